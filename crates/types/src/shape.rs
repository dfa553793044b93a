//! Array shapes and numpy broadcasting.

use std::fmt;

/// The shape of an array: one extent per axis; empty for a 0-d array (a numpy scalar).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    /// The shape of a 0-d array.
    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.0.len()
    }

    /// Extents, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of elements (1 for a 0-d array), or `None` when the product overflows `usize`.
    pub fn n_elements(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// True for a 0-d shape.
    pub fn is_scalar(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<usize>> for Shape {
    fn from(dims: Vec<usize>) -> Shape {
        Shape(dims)
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Shape {
        Shape(dims.to_vec())
    }
}

/// Formats like numpy: `(4, 5, 6)`, `(4,)` for one axis, `()` for 0-d.
impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("()"),
            [d] => write!(f, "({d},)"),
            dims => {
                f.write_str("(")?;
                for (i, d) in dims.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{d}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// Two shapes that numpy cannot broadcast together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BroadcastError {
    /// The left operand's shape (for several operands: the shape broadcast so far).
    pub left: Shape,
    /// The right operand's shape.
    pub right: Shape,
    /// The first disagreeing axis, counted from the end (0 is the last axis), as numpy aligns
    /// shapes at their trailing axes.
    pub axis_from_end: usize,
    /// The left extent on that axis.
    pub left_dim: usize,
    /// The right extent on that axis.
    pub right_dim: usize,
}

impl BroadcastError {
    /// True when one shape is the other plus trailing axes, the usual 3-D mask with a 4-D
    /// image mistake: `mask[..., None]` (one `None` per missing axis) fixes it.
    pub fn is_missing_trailing_axes(&self) -> bool {
        let (short, long) = if self.left.ndim() < self.right.ndim() {
            (&self.left, &self.right)
        } else {
            (&self.right, &self.left)
        };
        short.ndim() < long.ndim() && long.dims()[..short.ndim()] == *short.dims()
    }
}

impl fmt::Display for BroadcastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "operands could not be broadcast together with shapes {} {}",
            self.left, self.right
        )
    }
}

/// numpy's broadcasting of two shapes: align at the trailing axes; each pair of extents must
/// be equal or one of them 1; missing leading axes count as 1.
pub fn broadcast(left: &Shape, right: &Shape) -> Result<Shape, BroadcastError> {
    let ndim = left.ndim().max(right.ndim());
    let mut dims = vec![0; ndim];
    for axis_from_end in 0..ndim {
        let l = extent_from_end(left, axis_from_end);
        let r = extent_from_end(right, axis_from_end);
        let d = if l == r || r == 1 {
            l
        } else if l == 1 {
            r
        } else {
            return Err(BroadcastError {
                left: left.clone(),
                right: right.clone(),
                axis_from_end,
                left_dim: l,
                right_dim: r,
            });
        };
        dims[ndim - 1 - axis_from_end] = d;
    }
    Ok(Shape(dims))
}

/// Broadcasts several shapes left to right (as `np.broadcast_shapes`); the error reports the
/// shape broadcast so far against the operand that failed, and that operand's index.
pub fn broadcast_all(shapes: &[&Shape]) -> Result<Shape, (usize, BroadcastError)> {
    let mut acc = Shape::scalar();
    for (idx, s) in shapes.iter().enumerate() {
        acc = broadcast(&acc, s).map_err(|e| (idx, e))?;
    }
    Ok(acc)
}

fn extent_from_end(shape: &Shape, axis_from_end: usize) -> usize {
    if axis_from_end < shape.ndim() {
        shape.0[shape.ndim() - 1 - axis_from_end]
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(dims: &[usize]) -> Shape {
        Shape(dims.to_vec())
    }

    #[test]
    fn broadcasts_like_numpy() {
        assert_eq!(broadcast(&s(&[4, 5, 6]), &s(&[])), Ok(s(&[4, 5, 6])));
        assert_eq!(broadcast(&s(&[4, 1, 6]), &s(&[5, 1])), Ok(s(&[4, 5, 6])));
        assert_eq!(
            broadcast(&s(&[4, 5, 6, 1]), &s(&[4, 5, 6, 3])),
            Ok(s(&[4, 5, 6, 3]))
        );
    }

    #[test]
    fn three_d_with_four_d_fails_on_the_last_axis() {
        let err = broadcast(&s(&[4, 5, 6]), &s(&[4, 5, 6, 3])).unwrap_err();
        assert_eq!(err.axis_from_end, 0);
        assert_eq!((err.left_dim, err.right_dim), (6, 3));
        assert!(err.is_missing_trailing_axes());
        assert_eq!(
            err.to_string(),
            "operands could not be broadcast together with shapes (4, 5, 6) (4, 5, 6, 3)"
        );
        let other = broadcast(&s(&[4, 5]), &s(&[4, 6])).unwrap_err();
        assert!(!other.is_missing_trailing_axes());
    }

    #[test]
    fn displays_like_numpy() {
        assert_eq!(s(&[]).to_string(), "()");
        assert_eq!(s(&[3]).to_string(), "(3,)");
        assert_eq!(s(&[3, 4]).to_string(), "(3, 4)");
    }

    fn small_shape() -> impl Strategy<Value = Shape> {
        proptest::collection::vec(prop_oneof![Just(1usize), Just(2), Just(3)], 0..4).prop_map(Shape)
    }

    proptest! {
        #[test]
        fn broadcast_is_commutative(a in small_shape(), b in small_shape()) {
            prop_assert_eq!(broadcast(&a, &b).ok(), broadcast(&b, &a).ok());
        }

        #[test]
        fn broadcast_is_associative(a in small_shape(), b in small_shape(), c in small_shape()) {
            let left = broadcast(&a, &b).and_then(|ab| broadcast(&ab, &c)).ok();
            let right = broadcast(&b, &c).and_then(|bc| broadcast(&a, &bc)).ok();
            prop_assert_eq!(left, right);
        }

        #[test]
        fn broadcast_with_itself_or_scalar_is_identity(a in small_shape()) {
            prop_assert_eq!(broadcast(&a, &a), Ok(a.clone()));
            prop_assert_eq!(broadcast(&a, &Shape::scalar()), Ok(a.clone()));
        }
    }
}
