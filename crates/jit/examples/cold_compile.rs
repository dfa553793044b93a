//! The first compilation in a fresh process, pass by pass: run it many times as separate
//! processes to see where a cold compilation's time goes.
//! `cargo run --release -p voxcalc-jit --example cold_compile -- S2`

use std::time::Instant;

use voxcalc_ir::plan::plan;
use voxcalc_jit::{compile_plan, CompileOptions};

mod common;

type Log = std::rc::Rc<std::cell::RefCell<Vec<(&'static str, f64)>>>;

/// Records each Cranelift pass's wall time (children included) in microseconds.
struct PassLog(Log);

struct PassToken(Log, &'static str, Instant);

impl Drop for PassToken {
    fn drop(&mut self) {
        let us = self.2.elapsed().as_secs_f64() * 1e6;
        let mut log = self.0.borrow_mut();
        match log.iter_mut().find(|(n, _)| *n == self.1) {
            Some(e) => e.1 += us,
            None => log.push((self.1, us)),
        }
    }
}

impl cranelift_codegen::timing::Profiler for PassLog {
    fn start_pass(&self, pass: cranelift_codegen::timing::Pass) -> Box<dyn std::any::Any> {
        Box::new(PassToken(
            self.0.clone(),
            pass.description(),
            Instant::now(),
        ))
    }
}

fn show(log: &Log) -> String {
    let s: Vec<String> = log
        .borrow()
        .iter()
        .filter(|(_, us)| *us >= 5.0)
        .map(|(n, us)| format!("{n} {us:.0}"))
        .collect();
    log.borrow_mut().clear();
    s.join(", ")
}

/// Minor page faults of this process so far.
fn minflt() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            rest.split(' ').nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

fn main() {
    let log: Log = Default::default();
    cranelift_codegen::timing::set_thread_profiler(Box::new(PassLog(log.clone())));
    let which = std::env::args().nth(1).unwrap_or_else(|| "S2".into());
    let (tree, layouts) = common::checked(common::formula(&which));
    if std::env::var_os("WARM").is_some() {
        voxcalc_jit::warm_up();
    }
    log.borrow_mut().clear();
    let f0 = minflt();
    let t = Instant::now();
    let p = plan(&tree, &layouts).expect("the formula plans");
    let t_plan = t.elapsed();
    drop(compile_plan(&p, CompileOptions::default()).expect("compiles"));
    let t_all = t.elapsed();
    let f1 = minflt() - f0;
    let cold = show(&log);
    let t = Instant::now();
    drop(compile_plan(&p, CompileOptions::default()).expect("compiles"));
    let t_second = t.elapsed();
    println!(
        "plan {:.3} ms, plan+compile {:.3} ms ({f1} faults), second compile {:.3} ms",
        t_plan.as_secs_f64() * 1e3,
        t_all.as_secs_f64() * 1e3,
        t_second.as_secs_f64() * 1e3
    );
    if std::env::var_os("PASSES").is_some() {
        println!("cold:\n{cold}");
        println!("second:\n{}", show(&log));
    }
}
