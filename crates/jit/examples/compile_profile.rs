//! Where a kernel's compile time goes: Cranelift's own pass timings over many compilations of
//! the S2 plan of the performance issue, plus the cost of the first compilation in a process.
//! Run with `cargo run --release -p voxcalc-jit --example compile_profile -- [S1-S5 or a formula]`.

use std::time::Instant;

use voxcalc_ir::plan::plan;
use voxcalc_jit::{compile_plan, CompileOptions};

mod common;

fn main() {
    let text = std::env::args().nth(1).unwrap_or_else(|| {
        "np.where(mask > 0, np.log(np.abs(img1) + 1) * 2.5 - img2 / (img1 + 1.0), 0)".into()
    });
    let plan_of = |text: &str| {
        let (tree, layouts) = common::checked(text);
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
    let p = plan_of(common::formula(&text));
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
