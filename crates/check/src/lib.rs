//! The formula checker: resolves names against the bound images and the builtin registry,
//! infers numpy's dtype and shape for every node, and produces the typed tree ([`tir`]).
//!
//! Entry point: [`check`]. The rules are numpy 2's (NEP 50 promotion with weak Python scalars,
//! ufunc loop selection, broadcasting, reduction result dtypes); every refusal is a
//! [`CheckError`] that converts into a [`voxcalc_syntax::Diagnostic`] with an `E02xx` code.

mod checker;
pub mod docs;
pub mod error;
pub mod pyscalar;
pub mod registry;
pub mod text;
pub mod tir;

use voxcalc_syntax::ast;
use voxcalc_types::{DType, Shape};

pub use error::{CheckError, ErrorKind};
pub use registry::{Builtin, BUILTINS};

/// Deepest AST nesting the checker follows (the parser's own bound).
pub const MAX_CHECK_DEPTH: usize = voxcalc_syntax::MAX_NESTING_DEPTH;

/// Deepest typed tree the checker produces: each AST level expands to at most a few typed
/// nodes (an implicit cast, a desugared `nan_to_num`), and a deeper result is refused.
pub const MAX_TREE_DEPTH: usize = 8 * (MAX_CHECK_DEPTH + 1);

/// An image bound to a name in the formula.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The name the formula uses.
    pub name: String,
    /// The dtype of the image's data as numpy sees it (after scaling rules).
    pub dtype: DType,
    /// The image's shape.
    pub shape: Shape,
}

/// What a formula can refer to besides `np`: the bound images.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    images: Vec<Image>,
}

impl Env {
    /// An environment without images.
    pub fn new() -> Env {
        Env::default()
    }

    /// Binds (or rebinds) an image name; returns `self` for chaining.
    pub fn bind(
        &mut self,
        name: impl Into<String>,
        dtype: DType,
        shape: impl Into<Shape>,
    ) -> &mut Env {
        let name = name.into();
        let image = Image {
            name: name.clone(),
            dtype,
            shape: shape.into(),
        };
        match self.images.iter_mut().find(|i| i.name == name) {
            Some(existing) => *existing = image,
            None => self.images.push(image),
        }
        self
    }

    /// The bound images, in binding order (`tir::NodeKind::Input::input_idx` indexes this).
    pub fn images(&self) -> &[Image] {
        &self.images
    }

    /// Looks an image up by name.
    pub fn lookup(&self, name: &str) -> Option<(usize, &Image)> {
        self.images.iter().enumerate().find(|(_, i)| i.name == name)
    }
}

/// Checks a parsed formula against the bound images and returns its typed tree, or every
/// independent error found.
///
/// `ExprKind::Error` nodes (already reported by the parser) make the check fail without a
/// further error of their own.
pub fn check(expr: &ast::Expr, env: &Env) -> Result<tir::Tree, Vec<CheckError>> {
    checker::Checker::new(env).run(expr)
}

/// The bound images a formula names, in order of first mention, decided by the names in the
/// text alone (so it works on formulas that fail to parse or check, and counts an image even
/// when its contribution is folded away): the basis of "input not used" warnings.
pub fn referenced_images(expr: &ast::Expr, env: &Env) -> Vec<String> {
    use ast::ExprKind as K;
    let mut out: Vec<String> = Vec::new();
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match &e.kind {
            K::Name(n) => {
                if n.id != "np"
                    && n.id != "numpy"
                    && env.lookup(&n.id).is_some()
                    && !out.contains(&n.id)
                {
                    out.push(n.id.clone());
                }
            }
            K::Tuple(items) | K::List(items) => stack.extend(items.iter().rev()),
            K::Unary { operand, .. } => stack.push(operand),
            K::Binary { left, right, .. } => {
                stack.push(right);
                stack.push(left);
            }
            K::Compare { left, ops } => {
                stack.extend(ops.iter().rev().map(|(_, e)| e));
                stack.push(left);
            }
            K::BoolOp { values, .. } => stack.extend(values.iter().rev()),
            K::IfExp { body, test, orelse } => {
                stack.push(orelse);
                stack.push(test);
                stack.push(body);
            }
            K::Call {
                func,
                args,
                keywords,
            } => {
                stack.extend(keywords.iter().rev().map(|k| &k.value));
                stack.extend(args.iter().rev());
                stack.push(func);
            }
            // `x.attr`: only the value can name an image.
            K::Attribute { value, .. } => stack.push(value),
            K::Subscript { value, items } => {
                stack.extend(items.iter().rev());
                stack.push(value);
            }
            K::Slice { lower, upper, step } => {
                for part in [step, upper, lower].into_iter().flatten() {
                    stack.push(part);
                }
            }
            K::Int(_) | K::Float(_) | K::Str(_) | K::Bool(_) | K::None | K::Ellipsis | K::Error => {
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referenced_images_follow_the_text() {
        let mut env = Env::new();
        env.bind("img", DType::I16, vec![2, 3])
            .bind("mask", DType::U8, vec![2, 3])
            .bind("unused", DType::F32, vec![2]);
        let parsed = voxcalc_syntax::parse("np.where(mask > 0, img * 0, img.mean) + foo");
        assert_eq!(
            referenced_images(&parsed.expr, &env),
            vec!["mask".to_string(), "img".to_string()]
        );
        // The tree agrees on a formula that checks.
        let parsed = voxcalc_syntax::parse("img * 0 + mask");
        let tree = check(&parsed.expr, &env).unwrap();
        assert_eq!(tree.inputs_used, referenced_images(&parsed.expr, &env));
    }
}
