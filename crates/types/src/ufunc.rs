//! numpy ufunc loop lists and numpy's loop selection.
//!
//! A ufunc such as `np.sqrt` has a list of typed inner loops (`np.sqrt.types`:
//! `["e->e", "f->f", "d->d"]`). numpy picks the first loop whose input dtypes every operand
//! casts to safely, after weak Python scalars have taken the common dtype
//! ([`crate::promote::operand_dtypes`]). That is why `np.sqrt(int16)` is float32 (int16 does not
//! fit float16 safely) while `np.sqrt(int8)` is float16.

use crate::DType;

/// One typed inner loop of a ufunc: input dtypes and the output dtype.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loop {
    /// One dtype per input.
    pub inputs: Vec<DType>,
    /// The output dtype.
    pub output: DType,
}

/// Parses one loop signature in numpy's notation (`"ff->f"`, `"qQ->?"`). Returns `None` when the
/// loop involves a type voxcalc does not have (complex, long double, object, datetime).
pub fn parse_loop(sig: &str) -> Option<Loop> {
    let (ins, out) = sig.split_once("->")?;
    let inputs = ins
        .chars()
        .map(DType::from_char_code)
        .collect::<Option<Vec<_>>>()?;
    let mut out_chars = out.chars();
    let output = DType::from_char_code(out_chars.next()?)?;
    if out_chars.next().is_some() {
        return None;
    }
    Some(Loop { inputs, output })
}

/// Parses a whitespace-separated loop list (`"e->e f->f d->d"`), skipping loops voxcalc cannot
/// represent and repeats (numpy lists the 64-bit integer loops twice, as `l` and `q`).
pub fn parse_loops(list: &str) -> Vec<Loop> {
    let mut loops: Vec<Loop> = Vec::new();
    for l in list.split_whitespace().filter_map(parse_loop) {
        if !loops.contains(&l) {
            loops.push(l);
        }
    }
    loops
}

/// numpy's linear loop search: the first loop whose every input accepts the corresponding
/// operand dtype under safe casting; `None` when no loop fits (numpy's `UFuncTypeError`).
pub fn find_loop<'a>(loops: &'a [Loop], operands: &[DType]) -> Option<&'a Loop> {
    loops.iter().find(|l| {
        l.inputs.len() == operands.len()
            && l.inputs
                .iter()
                .zip(operands)
                .all(|(&want, &have)| have.can_cast_safe(want))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use DType::*;

    #[test]
    fn sqrt_of_small_ints_is_float16_and_of_int16_float32() {
        let loops = parse_loops("e->e f->f d->d g->g F->F");
        assert_eq!(loops.len(), 3);
        assert_eq!(find_loop(&loops, &[I8]).unwrap().output, F16);
        assert_eq!(find_loop(&loops, &[U8]).unwrap().output, F16);
        assert_eq!(find_loop(&loops, &[I16]).unwrap().output, F32);
        assert_eq!(find_loop(&loops, &[I32]).unwrap().output, F64);
        assert_eq!(find_loop(&loops, &[Bool]).unwrap().output, F16);
    }

    #[test]
    fn bitwise_and_has_no_float_loop() {
        let loops = parse_loops("??->? bb->b BB->B hh->h HH->H ii->i II->I qq->q QQ->Q");
        assert!(find_loop(&loops, &[F32, I16]).is_none());
        assert!(find_loop(&loops, &[U64, I64]).is_none());
        assert_eq!(find_loop(&loops, &[U8, I8]).unwrap().output, I16);
    }
}
