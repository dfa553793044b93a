//! Where a kernel's compile time goes: Cranelift's own pass timings over many compilations of
//! the S2 plan of the performance issue, plus the cost of the first compilation in a process.
//! Run with `cargo run --release -p voxcalc-jit --example compile_profile`.

use std::time::Instant;

use voxcalc_check::Env;
use voxcalc_ir::plan::{plan, ImageLayout};
use voxcalc_ir::ByteOrder;
use voxcalc_jit::{compile_plan, CompileOptions};
use voxcalc_types::DType;

fn main() {
    let text = std::env::args().nth(1).unwrap_or_else(|| {
        "np.where(mask > 0, np.log(np.abs(img1) + 1) * 2.5 - img2 / (img1 + 1.0), 0)".into()
    });
    let images = [
        ("mask", DType::U8, vec![256usize, 256, 256]),
        ("img1", DType::I16, vec![256, 256, 256]),
        ("img2", DType::F32, vec![256, 256, 256]),
        ("bold", DType::I16, vec![91, 109, 91, 200]),
    ];
    let plan_of = |text: &str| {
        let parsed = voxcalc_syntax::parse(text);
        let mut env = Env::new();
        for (name, dtype, shape) in &images {
            env.bind(*name, *dtype, shape.clone());
        }
        let tree = voxcalc_check::check(&parsed.expr, &env).expect("the formula checks");
        let layouts: Vec<ImageLayout> = images
            .iter()
            .map(|(_, _, s)| ImageLayout::fortran(s, ByteOrder::Native))
            .collect();
        plan(&tree, &layouts).expect("the formula plans")
    };
    if std::env::var_os("ISA").is_some() {
        use cranelift_codegen::settings::{self, Configurable};
        let t = Instant::now();
        let mut flags = settings::builder();
        flags.set("opt_level", "speed").expect("a known setting");
        let isa = cranelift_native::builder()
            .expect("a native ISA")
            .finish(settings::Flags::new(flags))
            .expect("an ISA");
        println!(
            "ISA creation: {:.3} ms ({})",
            t.elapsed().as_secs_f64() * 1e3,
            isa.name()
        );
    }
    if std::env::var_os("WARM").is_some() {
        let t = Instant::now();
        voxcalc_jit::warm_up();
        println!("warm_up: {:.3} ms", t.elapsed().as_secs_f64() * 1e3);
    }
    let trivial = plan_of("img1 + img1");
    let t = Instant::now();
    drop(compile_plan(&trivial, CompileOptions::default()).expect("compiles"));
    println!(
        "first compilation of img1 + img1: {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    drop(compile_plan(&trivial, CompileOptions::default()).expect("compiles"));
    println!(
        "second compilation of img1 + img1: {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let parsed = voxcalc_syntax::parse(&text);
    let mut env = Env::new();
    for (name, dtype, shape) in &images {
        env.bind(*name, *dtype, shape.clone());
    }
    let tree = voxcalc_check::check(&parsed.expr, &env).expect("the formula checks");
    let layouts: Vec<ImageLayout> = images
        .iter()
        .map(|(_, _, s)| ImageLayout::fortran(s, ByteOrder::Native))
        .collect();
    let p = plan(&tree, &layouts).expect("the formula plans");
    if std::env::var_os("EXPLAIN").is_some() {
        let c = compile_plan(&p, CompileOptions { keep_clif: true }).expect("compiles");
        println!("{}", c.explain());
    }
    let t = Instant::now();
    drop(compile_plan(&p, CompileOptions::default()).expect("compiles"));
    println!(
        "first compilation: {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let _ = cranelift_codegen::timing::take_current();
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        drop(compile_plan(&p, CompileOptions::default()).expect("compiles"));
    }
    println!(
        "mean of {n}: {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / n as f64
    );
    println!("{}", cranelift_codegen::timing::take_current());
}
