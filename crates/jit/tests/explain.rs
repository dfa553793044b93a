//! `explain` shows every layer of a formula: typed tree, plan, kernel IR, Cranelift IR.

use voxcalc_check::Env;
use voxcalc_ir::plan::ImageLayout;
use voxcalc_ir::ByteOrder;
use voxcalc_types::DType;

#[test]
fn explain_shows_tree_plan_kernel_and_cranelift_ir() {
    let parsed = voxcalc_syntax::parse("np.mean(bold, axis=-1) / np.std(bold, axis=-1)");
    let mut env = Env::new();
    env.bind("bold", DType::I16, vec![4, 3, 2, 10]);
    let tree = voxcalc_check::check(&parsed.expr, &env).expect("checks");
    let layouts = [ImageLayout::fortran(&[4, 3, 2, 10], ByteOrder::Swapped)];
    let text = voxcalc_jit::explain(&tree, &layouts).expect("compiles");
    assert!(text.starts_with("typed tree:\n"), "{text}");
    // One fused stage: the mean is shared by the tSNR's mean and the std (CSE).
    assert!(
        text.contains("stage 0 (output): float64 [4, 3, 2]"),
        "{text}"
    );
    assert!(!text.contains("stage 1"), "{text}");
    assert!(text.contains("in0: int16 byteswapped"), "{text}");
    assert_eq!(text.matches("reduce.sum.float64").count(), 2, "{text}");
    // Cranelift IR: loads from mapped data are notrap only (never `aligned`), byte-swapped.
    assert!(text.contains("stage 0 Cranelift IR:\nfunction"), "{text}");
    assert!(text.contains("load.i16 notrap"), "{text}");
    assert!(text.contains("bswap"), "{text}");
    assert!(!text.contains("aligned"), "{text}");
}
