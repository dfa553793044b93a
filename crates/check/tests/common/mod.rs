//! Shared test helpers: a case file's header binds images, the rest is the formula.

use voxcalc_check::Env;
use voxcalc_types::DType;

/// A test case: the bound images and the formula text.
pub struct Case {
    pub env: Env,
    pub formula: String,
}

/// Parses a case file: `# name: dtype (d0, d1, ...)` header lines bind images; other lines
/// starting with `#` are comments; everything else is the formula.
pub fn parse_case(text: &str) -> Result<Case, String> {
    let mut env = Env::new();
    let mut formula = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim();
            let Some((name, spec)) = rest.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let spec = spec.trim();
            let (dtype, shape) = spec
                .split_once(' ')
                .ok_or_else(|| format!("bad binding `{rest}`"))?;
            let dtype =
                DType::from_name(dtype).ok_or_else(|| format!("unknown dtype `{dtype}`"))?;
            let dims = shape.trim().trim_start_matches('(').trim_end_matches(')');
            let dims: Vec<usize> = dims
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(|d| {
                    d.parse::<usize>()
                        .map_err(|e| format!("bad extent `{d}`: {e}"))
                })
                .collect::<Result<_, _>>()?;
            env.bind(name, dtype, dims);
        } else if !line.trim().is_empty() {
            formula.push(line);
        }
    }
    Ok(Case {
        env,
        formula: formula.join("\n"),
    })
}
