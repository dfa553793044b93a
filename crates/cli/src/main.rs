//! The `voxcalc` command-line tool.

fn main() {
    eprintln!("voxcalc: not built yet");
    std::process::exit(2);
}
