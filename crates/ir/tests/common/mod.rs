//! Helpers shared by the planner tests.

use voxcalc_check::Env;
use voxcalc_ir::plan::{plan, ImageLayout, Plan};
use voxcalc_ir::ByteOrder;
use voxcalc_types::DType;

/// Parses, checks and plans `formula` over images given as (name, dtype, shape).
pub fn plan_formula(formula: &str, images: &[(&str, DType, Vec<usize>)]) -> Plan {
    let parsed = voxcalc_syntax::parse(formula);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let mut env = Env::new();
    for (name, dtype, shape) in images {
        env.bind(*name, *dtype, shape.clone());
    }
    let tree = voxcalc_check::check(&parsed.expr, &env).expect("formula checks");
    let layouts: Vec<ImageLayout> = images
        .iter()
        .map(|(_, _, shape)| ImageLayout::fortran(shape, ByteOrder::Native))
        .collect();
    plan(&tree, &layouts).expect("formula plans")
}
