//! Setup shared by the compile-latency examples: the performance issue's formulas over images
//! of its shapes (3-D 256^3 mask/int16/float32, 4-D 91x109x91x200 int16 `bold`).

use voxcalc_check::{tir::Tree, Env};
use voxcalc_ir::plan::ImageLayout;
use voxcalc_ir::ByteOrder;
use voxcalc_types::DType;

/// Formula `S1`-`S5` of the performance issue by name; any other text is itself.
pub fn formula(which: &str) -> &str {
    match which {
        "S1" => "img1 + img2",
        "S2" => "np.where(mask > 0, np.log(np.abs(img1) + 1) * 2.5 - img2 / (img1 + 1.0), 0)",
        "S3" => "np.mean(bold, axis=-1)",
        "S4" => "np.mean(bold, axis=-1) / np.std(bold, axis=-1)",
        "S5" => {
            "(bold - np.mean(bold, axis=-1, keepdims=True)) / np.std(bold, axis=-1, keepdims=True)"
        }
        other => other,
    }
}

/// `text` parsed and checked over `mask`, `img1`, `img2` and `bold`, with their layouts.
pub fn checked(text: &str) -> (Tree, Vec<ImageLayout>) {
    let images = [
        ("mask", DType::U8, vec![256usize, 256, 256]),
        ("img1", DType::I16, vec![256, 256, 256]),
        ("img2", DType::F32, vec![256, 256, 256]),
        ("bold", DType::I16, vec![91, 109, 91, 200]),
    ];
    let parsed = voxcalc_syntax::parse(text);
    let mut env = Env::new();
    for (name, dtype, shape) in &images {
        env.bind(*name, *dtype, shape.clone());
    }
    let tree = voxcalc_check::check(&parsed.expr, &env).expect("the formula checks");
    let layouts = images
        .iter()
        .map(|(_, _, s)| ImageLayout::fortran(s, ByteOrder::Native))
        .collect();
    (tree, layouts)
}
