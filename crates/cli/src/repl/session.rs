//! A REPL session: the named images (loaded files and kept results), and what each input
//! line does to them. Output is returned as text so that the terminal loop, the scripted loop
//! and tests share it.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use voxcalc::{
    DType, EvalOptions, Evaluated, Formula, Header, Image, InputSpec, Progress, Severity,
    WriteOptions,
};
use voxcalc_check::registry::{Namespace, BUILTINS};
use voxcalc_syntax::lexer::{lex, TokenKind};

use super::commands::{self, Command, COMMANDS};
use super::picture::picture;
use super::summary::{format_shape, stats, summarize, value_at, SummaryOptions};
use crate::progress::TerminalProgress;

/// How the session presents results.
#[derive(Clone, Copy, Debug)]
pub struct SessionOptions {
    /// Show compile and run times.
    pub timings: bool,
    /// Draw `:show` pictures in 24-bit colour (else as plain text).
    pub colour: bool,
    /// Width available for pictures, in characters.
    pub width: usize,
    /// Worker threads for evaluations (`None`: every core).
    pub threads: Option<usize>,
    /// Draw a progress bar on stderr for evaluations longer than a second.
    pub progress_bar: bool,
}

/// Where a name's image came from.
enum Origin {
    /// Opened from a file.
    File,
    /// Computed by this formula.
    Formula(String),
}

struct Var {
    name: String,
    image: Rc<Image>,
    origin: Origin,
}

/// What the loop should do after a line.
pub enum Step {
    /// Print this (possibly empty) text and read the next line.
    Continue(String),
    /// End the session.
    Quit,
}

/// The session state.
pub struct Session {
    vars: Vec<Var>,
    /// Recently compiled formulas with the sources and inputs they were compiled for.
    formulas: RefCell<Vec<FormulaCacheEntry>>,
    options: SessionOptions,
    cancel: Arc<AtomicBool>,
}

/// Progress of one evaluation: a bar on stderr when enabled, and cancellation from the
/// Ctrl-C flag.
struct EvalProgress<'a> {
    bar: TerminalProgress,
    cancel: &'a AtomicBool,
}

impl<'a> EvalProgress<'a> {
    fn start(options: &SessionOptions, cancel: &'a AtomicBool) -> EvalProgress<'a> {
        EvalProgress {
            bar: TerminalProgress::start(options.progress_bar),
            cancel,
        }
    }
}

impl Progress for EvalProgress<'_> {
    fn advance(&self, voxels: u64, total: u64) {
        self.bar.advance(voxels, total);
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// The facade's error, with Ctrl-C's cancellation said plainly.
fn eval_error(err: voxcalc::Error) -> anyhow::Error {
    match err {
        voxcalc::Error::Cancelled => anyhow::anyhow!("evaluation cancelled (Ctrl-C)"),
        other => other.into(),
    }
}

/// A compiled formula keyed by its source and inputs.
type FormulaCacheEntry = ((String, Vec<InputSpec>), Rc<Formula>);

/// How many compiled formulas a session keeps.
const FORMULA_CACHE_SIZE: usize = 32;

/// Names a user may not bind.
const RESERVED: &[&str] = &["np", "numpy", "_"];

impl Session {
    /// An empty session. `cancel` is set by the Ctrl-C handler to stop a running evaluation;
    /// the caller clears it before each line.
    pub fn new(options: SessionOptions, cancel: Arc<AtomicBool>) -> Session {
        Session {
            vars: Vec::new(),
            formulas: RefCell::new(Vec::new()),
            options,
            cancel,
        }
    }

    /// Sets the width available for pictures (the terminal may have been resized).
    pub fn set_width(&mut self, width: usize) {
        self.options.width = width;
    }

    /// The names bound, for completion.
    pub fn names(&self) -> Vec<String> {
        self.vars.iter().map(|v| v.name.clone()).collect()
    }

    /// Handles one input line.
    pub fn handle(&mut self, line: &str) -> Result<Step> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(Step::Continue(String::new()));
        }
        if let Some(command) = line.strip_prefix(':') {
            return self.command(commands::parse(command)?);
        }
        let (name, formula) = match split_assignment(line) {
            Some((name, formula)) => {
                check_new_name(name)?;
                (Some(name), formula)
            }
            None => (None, line),
        };
        let evaluated = self.evaluate(formula)?;
        let timings = evaluated.timings;
        let mut out = String::new();
        for warning in evaluated
            .warnings
            .iter()
            .filter(|w| w.severity == Severity::Warning && w.code != "W0001")
        {
            let _ = writeln!(out, "warning: {}", warning.message);
        }
        let shown = name.unwrap_or("_");
        let image = Rc::new(Image::from_evaluated(
            evaluated,
            &format!("{shown} = {formula}"),
        )?);
        out.push_str(&summarize(
            shown,
            &image,
            timings,
            SummaryOptions {
                timings: self.options.timings,
            },
        ));
        if let Some(name) = name {
            self.bind(name, image.clone(), Origin::Formula(formula.to_string()));
        }
        self.bind("_", image, Origin::Formula(formula.to_string()));
        Ok(Step::Continue(out))
    }

    fn bind(&mut self, name: &str, image: Rc<Image>, origin: Origin) {
        let var = Var {
            name: name.to_string(),
            image,
            origin,
        };
        match self.vars.iter_mut().find(|v| v.name == name) {
            Some(slot) => *slot = var,
            None => self.vars.push(var),
        }
    }

    fn get(&self, name: &str) -> Result<&Var> {
        if let Some(var) = self.vars.iter().find(|v| v.name == name) {
            return Ok(var);
        }
        if self.vars.is_empty() {
            bail!("no image is named `{name}`: the session has none yet; open one with `:load NAME PATH`");
        }
        let names = self.vars.iter().map(|v| v.name.as_str());
        match commands::closest(name, names) {
            Some(near) => {
                bail!("no image is named `{name}`; did you mean `{near}`? (`:vars` lists them)")
            }
            None => bail!("no image is named `{name}` (`:vars` lists them)"),
        }
    }

    /// Compiles and evaluates a formula over the session's images.
    fn evaluate(&self, source: &str) -> Result<Evaluated> {
        let (formula, bound) = self.compile(source)?;
        let images: Vec<(&str, &Image)> = bound
            .iter()
            .map(|var| (var.name.as_str(), &*var.image))
            .collect();
        let options = EvalOptions {
            threads: self.options.threads,
            ..EvalOptions::default()
        };
        let progress = EvalProgress::start(&self.options, &self.cancel);
        let res = formula.eval(&images, &options, &progress);
        progress.bar.finish();
        res.map_err(eval_error)
    }

    /// Checks `source` against every name in the session (so that a misspelt name gets a
    /// suggestion), then compiles it for the names it uses. 0-d results used beside images
    /// are written into the formula as numpy scalars of their dtype, which type exactly as
    /// 0-d arrays do: as inputs they would fail nilearn's same-grid check.
    fn compile(&self, source: &str) -> Result<(Rc<Formula>, Vec<&Var>)> {
        let all_specs: Vec<InputSpec> = self
            .vars
            .iter()
            .map(|var| InputSpec::of(&var.name, &var.image))
            .collect();
        Formula::compile(source, &all_specs)?;
        let used = referenced_names(source, &self.names());
        let used_vars: Vec<&Var> = self
            .vars
            .iter()
            .filter(|v| used.contains(&v.name))
            .collect();
        let (arrays, scalars): (Vec<&Var>, Vec<&Var>) = used_vars
            .into_iter()
            .partition(|v| !v.image.shape().is_empty());
        if arrays.is_empty() || scalars.is_empty() {
            let bound: Vec<&Var> = arrays.into_iter().chain(scalars).collect();
            let specs: Vec<InputSpec> = bound
                .iter()
                .map(|v| InputSpec::of(&v.name, &v.image))
                .collect();
            return Ok((self.cached_formula(source, specs)?, bound));
        }
        let substituted = substitute_scalars(source, &scalars);
        let specs: Vec<InputSpec> = arrays
            .iter()
            .map(|v| InputSpec::of(&v.name, &v.image))
            .collect();
        Ok((self.cached_formula(&substituted, specs)?, arrays))
    }

    /// The formula compiled for these inputs, reused when the same line is run again on
    /// inputs of the same dtypes and shapes (its native code is then not compiled again).
    fn cached_formula(&self, source: &str, specs: Vec<InputSpec>) -> Result<Rc<Formula>> {
        let mut cache = self.formulas.borrow_mut();
        if let Some((_, formula)) = cache
            .iter()
            .find(|(key, _)| key.0 == source && key.1 == specs)
        {
            return Ok(formula.clone());
        }
        let formula = Rc::new(Formula::compile(source, &specs)?);
        if cache.len() == FORMULA_CACHE_SIZE {
            cache.remove(0);
        }
        cache.push(((source.to_string(), specs), formula.clone()));
        Ok(formula)
    }

    fn command(&mut self, command: Command) -> Result<Step> {
        let mut out = String::new();
        match command {
            Command::Load { name, path } => {
                check_new_name(&name)?;
                let image = Image::load(&path).with_context(|| format!("cannot load `{name}`"))?;
                let _ = writeln!(
                    out,
                    "{name}: {} {} from {}",
                    image.dtype(),
                    format_shape(&image.shape()),
                    path.display()
                );
                self.bind(&name, Rc::new(image), Origin::File);
            }
            Command::Save {
                name,
                path,
                copy_header_from,
            } => {
                self.save(&name, &path, copy_header_from.as_deref())?;
                let _ = writeln!(out, "saved {name} to {}", path.display());
            }
            Command::Info { name } => {
                out.push_str(&self.get(&name)?.image.describe());
            }
            Command::Vars => out = self.vars_table(),
            Command::Funcs { prefix } => out = funcs(prefix.as_deref()),
            Command::Explain { formula } => {
                let (compiled, bound) = self.compile(&formula)?;
                let images: Vec<(&str, &Image)> = bound
                    .iter()
                    .map(|var| (var.name.as_str(), &*var.image))
                    .collect();
                out = compiled.explain(&images)?;
            }
            Command::Show { name, view } => {
                let var = self.get(&name)?;
                let pic = picture(&var.image, &view, self.options.width)?;
                out = if self.options.colour {
                    pic.to_ansi()
                } else {
                    pic.to_text()
                };
            }
            Command::Png {
                name,
                path,
                view,
                scale,
            } => {
                let var = self.get(&name)?;
                let pic = picture(&var.image, &view, usize::MAX)?;
                let png = pic.to_png(scale)?;
                write_atomically(&path, &png)?;
                let _ = writeln!(
                    out,
                    "wrote {} ({} x {} pixels)",
                    path.display(),
                    pic.width * scale,
                    pic.height * scale
                );
            }
            Command::Help => out = help(),
            Command::Quit => return Ok(Step::Quit),
        }
        Ok(Step::Continue(out))
    }

    /// `:save`: a kept result is written as computed (its header re-based on another image's
    /// with `--copy-header-from`); a loaded image as `math_img(NAME)` would write it.
    fn save(&self, name: &str, path: &Path, copy_header_from: Option<&str>) -> Result<()> {
        let var = self.get(name)?;
        let source = copy_header_from.map(|n| self.get(n)).transpose()?;
        let write = WriteOptions::default();
        match &var.origin {
            Origin::Formula(_) => {
                let image = &var.image;
                let mut header = image.header().clone();
                if let Some(source) = source {
                    header = copied_header(image, source)?;
                }
                let evaluated = Evaluated {
                    header,
                    data: image.raw().bytes.to_vec(),
                    warnings: Vec::new(),
                    timings: Default::default(),
                };
                evaluated.save(path, &write)?;
            }
            Origin::File => {
                let mut bound = vec![(var.name.as_str(), &*var.image)];
                if let Some(source) = source {
                    if source.name != var.name {
                        bound.push((source.name.as_str(), &*source.image));
                    }
                }
                let specs: Vec<InputSpec> =
                    bound.iter().map(|(n, i)| InputSpec::of(n, i)).collect();
                let formula = Formula::compile(name, &specs)?;
                let options = EvalOptions {
                    copy_header_from: copy_header_from.map(str::to_string),
                    threads: self.options.threads,
                    write,
                    allow_overwrite_input: false,
                };
                let progress = EvalProgress::start(&self.options, &self.cancel);
                let res = formula.eval_to_file(&bound, path, &options, &progress);
                progress.bar.finish();
                res.map_err(eval_error)?;
            }
        }
        Ok(())
    }

    fn vars_table(&self) -> String {
        if self.vars.is_empty() {
            return "no images yet: `:load NAME PATH` opens one\n".to_string();
        }
        let rows: Vec<[String; 4]> = self
            .vars
            .iter()
            .map(|var| {
                let image = &var.image;
                let what = if image.shape().is_empty() {
                    crate::eval::format_scalar(value_at(image, 0), image.dtype())
                } else {
                    format_shape(&image.shape())
                };
                let from = match &var.origin {
                    Origin::File => image.path().display().to_string(),
                    Origin::Formula(formula) => format!("= {formula}"),
                };
                [var.name.clone(), image.dtype().to_string(), what, from]
            })
            .collect();
        let width = |col: usize| {
            rows.iter()
                .map(|r| r[col].chars().count())
                .max()
                .unwrap_or(0)
        };
        let (w0, w1, w2) = (width(0), width(1), width(2));
        let mut out = String::new();
        for [name, dtype, what, from] in &rows {
            let _ = writeln!(out, "{name:<w0$}  {dtype:<w1$}  {what:<w2$}  {from}");
        }
        out
    }
}

/// `name = formula` (not `==`), when the line starts so.
fn split_assignment(line: &str) -> Option<(&str, &str)> {
    let end = line
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(line.len(), |(idx, _)| idx);
    let name = &line[..end];
    let rest = line[end..].trim_start();
    let first = name.chars().next()?;
    if !(first.is_alphabetic() || first == '_') {
        return None;
    }
    let formula = rest.strip_prefix('=')?;
    if formula.starts_with('=') {
        return None;
    }
    Some((name, formula.trim()))
}

fn check_new_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric());
    if !valid {
        bail!("`{name}` cannot be a name: names are Python identifiers (letters, digits and _, not starting with a digit)");
    }
    if RESERVED.contains(&name) {
        bail!("`{name}` is reserved (`np` and `numpy` are numpy, `_` is the last result): choose another name");
    }
    let keyword = lex(name)
        .tokens
        .first()
        .is_some_and(|t| t.kind != TokenKind::Name);
    if keyword {
        bail!("`{name}` is a Python keyword: choose another name");
    }
    Ok(())
}

/// The session names a formula mentions: name tokens not after a `.` (attributes) and not
/// before a single `=` (keyword arguments).
fn referenced_names(source: &str, names: &[String]) -> Vec<String> {
    let tokens = lex(source).tokens;
    let mut out: Vec<String> = Vec::new();
    for (idx, token) in tokens.iter().enumerate() {
        if token.kind != TokenKind::Name {
            continue;
        }
        let after_dot = idx > 0 && tokens[idx - 1].kind == TokenKind::Dot;
        let keyword = tokens
            .get(idx + 1)
            .is_some_and(|t| t.kind == TokenKind::Equal);
        let text = &source[token.range.to_usize()];
        if !after_dot
            && !keyword
            && names.iter().any(|n| n == text)
            && !out.iter().any(|n| n == text)
        {
            out.push(text.to_string());
        }
    }
    out
}

/// Replaces each mention of a 0-d result by its value as a numpy scalar (`np.float32(2.5)`).
fn substitute_scalars(source: &str, scalars: &[&Var]) -> String {
    let tokens = lex(source).tokens;
    let mut out = String::new();
    let mut copied = 0;
    for (idx, token) in tokens.iter().enumerate() {
        if token.kind != TokenKind::Name || (idx > 0 && tokens[idx - 1].kind == TokenKind::Dot) {
            continue;
        }
        if tokens
            .get(idx + 1)
            .is_some_and(|t| t.kind == TokenKind::Equal)
        {
            continue;
        }
        let range = token.range.to_usize();
        let Some(var) = scalars.iter().find(|v| v.name == source[range.clone()]) else {
            continue;
        };
        out.push_str(&source[copied..range.start]);
        out.push_str(&scalar_literal(value_at(&var.image, 0), var.image.dtype()));
        copied = range.end;
    }
    out.push_str(&source[copied..]);
    out
}

/// A numpy scalar expression of exactly this value and dtype.
fn scalar_literal(value: f64, dtype: DType) -> String {
    let text = if value.is_nan() {
        "np.nan".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "np.inf" } else { "-np.inf" }.to_string()
    } else if dtype.is_float() {
        // f64 of the stored value: exact, and rounds back to the same float32.
        format!("{value:?}")
    } else {
        format!("{value:.0}")
    };
    let dtype_name = if dtype == DType::Bool {
        "bool_".to_string()
    } else {
        dtype.to_string()
    };
    format!("np.{dtype_name}({text})")
}

/// The header of `image` rebased on `source`'s, as nilearn's `copy_header_from`.
fn copied_header(image: &Image, source: &Var) -> Result<Header> {
    let shape = image.shape();
    let source_shape = source.image.shape();
    if shape.len() != source_shape.len() {
        bail!(
            "cannot copy the header of `{}`: it is {}-D and the image is {}-D (nilearn refuses this too)",
            source.name,
            source_shape.len(),
            shape.len()
        );
    }
    if shape[..shape.len().min(3)] != source_shape[..source_shape.len().min(3)] {
        bail!(
            "cannot copy the header of `{}`: its voxel grid {} differs from the image's {}",
            source.name,
            format_shape(&source_shape),
            format_shape(&shape)
        );
    }
    let s = stats(image);
    let range = if s.n_nan > 0 {
        (f64::NAN, f64::NAN)
    } else {
        (s.min, s.max)
    };
    Header::copied_for_output(source.image.header(), &shape, image.dtype(), range)
        .map_err(|e| anyhow::anyhow!("cannot build the header: {e}"))
}

/// Writes `bytes` to a temp file beside `path` and renames it, so no partial file appears.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .with_context(|| format!("`{}` is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("cannot write {}: {e}", path.display())
    })
}

/// `:funcs`: every function, method, attribute and constant with its signature and meaning.
fn funcs(prefix: Option<&str>) -> String {
    let rows: Vec<_> = BUILTINS
        .iter()
        .filter(|b| match prefix {
            None => true,
            Some(p) => {
                let p = p.trim_start_matches("np.").trim_start_matches('.');
                b.name.starts_with(p)
            }
        })
        .collect();
    if rows.is_empty() {
        return format!("no function starts with `{}`\n", prefix.unwrap_or_default());
    }
    let width = rows
        .iter()
        .map(|b| b.signature.len())
        .max()
        .unwrap_or(0)
        .min(40);
    let mut out = String::new();
    for (namespace, title) in [
        (Namespace::Np, "numpy functions and constants"),
        (Namespace::Method, "array methods"),
        (Namespace::Attribute, "array attributes"),
        (Namespace::Python, "Python builtins"),
    ] {
        let group: Vec<_> = rows.iter().filter(|b| b.namespace == namespace).collect();
        if group.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "{title}:");
        for builtin in group {
            let _ = writeln!(out, "  {:<width$}  {}", builtin.signature, builtin.meaning);
        }
    }
    out
}

fn help() -> String {
    let mut out = String::from(
        "Type a formula to evaluate it over the images in the session, e.g.\n  \
         np.mean(bold, axis=-1)\nor keep the result under a name:\n  \
         m = np.where(mask > 0, anat, 0)\n`_` is the last result. Commands:\n",
    );
    let width = COMMANDS
        .iter()
        .map(|c| c.name.len() + c.usage.len() + 2)
        .max()
        .unwrap_or(0);
    for command in COMMANDS {
        let usage = format!(":{} {}", command.name, command.usage);
        let _ = writeln!(out, "  {:<width$}  {}", usage.trim_end(), command.meaning);
    }
    out.push_str(
        "Tab completes np. functions, methods after `name.`, names and commands. Ctrl-C cancels\n\
         a running evaluation; Ctrl-D or :quit leaves.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session_with_anat(cancel: Arc<AtomicBool>) -> Session {
        let options = SessionOptions {
            timings: false,
            colour: false,
            width: 80,
            threads: Some(1),
            progress_bar: false,
        };
        let mut session = Session::new(options, cancel);
        let anat = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/anat.nii.gz");
        assert!(session.handle(&format!(":load anat {anat}")).is_ok());
        session
    }

    #[test]
    fn the_ctrl_c_flag_cancels_an_evaluation_and_the_session_goes_on() {
        let cancel = Arc::new(AtomicBool::new(true));
        let mut session = session_with_anat(cancel.clone());
        let err = session.handle("kept = anat * 2").err().expect("cancelled");
        assert_eq!(err.to_string(), "evaluation cancelled (Ctrl-C)");
        assert!(!session.names().contains(&"kept".to_string()));
        cancel.store(false, Ordering::Relaxed);
        assert!(session.handle("kept = anat * 2").is_ok());
        assert!(session.names().contains(&"kept".to_string()));
    }

    #[test]
    fn a_formula_run_again_reuses_its_native_code() {
        let mut session = session_with_anat(Arc::new(AtomicBool::new(false)));
        assert!(session.handle("anat * 3 + 1").is_ok());
        let (first, _) = session.compile("anat * 3 + 1").expect("compiles");
        let (again, _) = session.compile("anat * 3 + 1").expect("compiles");
        assert!(Rc::ptr_eq(&first, &again));
        // Rebinding a name to an image of another shape compiles anew.
        let anat = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/mask.nii.gz");
        assert!(session.handle(&format!(":load anat {anat}")).is_ok());
        let (other, _) = session.compile("anat * 3 + 1").expect("compiles");
        assert!(!Rc::ptr_eq(&first, &other));
        assert_eq!(other.shape(), vec![24, 28, 24]);
    }

    #[test]
    fn assignments_are_not_comparisons() {
        assert_eq!(split_assignment("m = a + 1"), Some(("m", "a + 1")));
        assert_eq!(split_assignment("m=a"), Some(("m", "a")));
        assert_eq!(split_assignment("a == 1"), None);
        assert_eq!(split_assignment("np.mean(a, axis=-1)"), None);
        assert_eq!(split_assignment("1 = a"), None);
    }

    #[test]
    fn referenced_names_skip_attributes_and_keywords() {
        let names = vec!["a".to_string(), "axis".to_string(), "mean".to_string()];
        assert_eq!(
            referenced_names("np.mean(a, axis=-1) + a.mean()", &names),
            vec!["a"]
        );
    }

    #[test]
    fn scalar_literals_keep_dtype_and_value() {
        assert_eq!(scalar_literal(2.5, DType::F32), "np.float32(2.5)");
        assert_eq!(scalar_literal(-3.0, DType::I16), "np.int16(-3)");
        assert_eq!(scalar_literal(f64::NAN, DType::F64), "np.float64(np.nan)");
        assert_eq!(scalar_literal(0.1, DType::F64), "np.float64(0.1)");
    }
}
