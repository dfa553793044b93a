//! [`Formula`]: a formula parsed and checked once for a set of named inputs, compiled to native
//! kernels, and evaluated on any number of images of those dtypes and shapes.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use voxcalc_check::{tir, Env};
use voxcalc_ir::plan::{plan, ImageLayout};
use voxcalc_ir::{ByteOrder as IrByteOrder, InputBuf};
use voxcalc_jit::{compile_plan, CompileOptions, CompiledPlan};
use voxcalc_nifti::{
    check_output_not_input, native_range, ByteOrder, Header, OutputImage, WriteOptions,
};
use voxcalc_runtime::{NoProgress, Progress, RunOptions};
use voxcalc_syntax::{Diagnostic, Label, TextRange};
use voxcalc_types::DType;

use crate::{Error, Image};

/// A named input a formula is compiled for: the dtype and shape a formula sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputSpec {
    /// The name the formula uses.
    pub name: String,
    /// numpy dtype of the data (float64 for scaled images, as nibabel gives them).
    pub dtype: DType,
    /// Shape of the data.
    pub shape: Vec<usize>,
}

impl InputSpec {
    /// The spec of an opened image under `name`.
    pub fn of(name: &str, image: &Image) -> InputSpec {
        InputSpec {
            name: name.to_string(),
            dtype: image.dtype(),
            shape: image.shape(),
        }
    }
}

/// How to evaluate: which header to copy, threads, output compression, overwrite policy.
#[derive(Clone, Debug, Default)]
pub struct EvalOptions {
    /// Copy this input's header (TR, units, codes, descrip, extensions) onto the result, as
    /// nilearn's `copy_header_from`; the result's dtype is kept (docs/compat.md).
    pub copy_header_from: Option<String>,
    /// Worker threads (`None`: every core). Results do not depend on it.
    pub threads: Option<usize>,
    /// gzip level and buffering for `.nii.gz` outputs.
    pub write: WriteOptions,
    /// Allow the output path to be one of the inputs (it is still written to a temp file and
    /// renamed, so the input is never corrupted while being read).
    pub allow_overwrite_input: bool,
}

/// Time spent in each phase of one evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Planning and native compilation (zero when a cached kernel was reused).
    pub compile: Duration,
    /// Running the kernels.
    pub run: Duration,
    /// Writing the output file (zero for in-memory results).
    pub write: Duration,
}

/// A formula's result held in memory: data in the on-disk dtype, with the header it would be
/// saved with.
pub struct Evaluated {
    /// The header (shape, dtype, affine, codes) the result is saved with.
    pub header: Header,
    /// Data in native byte order, Fortran order, dtype [`Evaluated::dtype`].
    pub data: Vec<u8>,
    /// Warnings about the call (e.g. an input the formula does not use).
    pub warnings: Vec<Diagnostic>,
    /// Time spent per phase.
    pub timings: Timings,
}

impl Evaluated {
    /// The on-disk dtype of the result.
    pub fn dtype(&self) -> DType {
        self.header.dtype().unwrap_or(DType::U8)
    }

    /// The result's shape (`[]` for a 0-d result such as `np.mean(img)`).
    pub fn shape(&self) -> Vec<usize> {
        self.header.shape()
    }

    /// Element `idx` as f64 (for summaries and tests).
    pub fn value_f64(&self, idx: usize) -> f64 {
        value_f64(&self.data, self.dtype(), idx)
    }

    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.data.len() / self.dtype().size()
    }

    /// The value of a 0-d result.
    pub fn scalar(&self) -> Option<f64> {
        (self.shape().is_empty() && self.n_elements() == 1).then(|| self.value_f64(0))
    }

    /// Writes the result to `path` (`.nii`, `.nii.gz`, `.hdr`/`.img`) atomically.
    pub fn save(&self, path: impl AsRef<Path>, options: &WriteOptions) -> Result<(), Error> {
        let mut out = OutputImage::create(path, &self.header, options)?;
        out.data_mut().copy_from_slice(&self.data);
        out.finish()?;
        Ok(())
    }
}

/// What [`Formula::eval_to_file`] reports.
#[derive(Clone, Debug)]
pub struct Written {
    /// The value, for a 0-d result.
    pub scalar: Option<f64>,
    /// The on-disk dtype of the result.
    pub dtype: DType,
    /// Warnings about the call.
    pub warnings: Vec<Diagnostic>,
    /// Time spent per phase.
    pub timings: Timings,
}

/// A compiled plan with the input layouts it was compiled for.
type CacheEntry = (Vec<ImageLayout>, Arc<CompiledPlan>);

/// A checked formula. Native code is compiled on first use for each combination of input
/// byte orders and cached, so one `Formula` evaluates many subjects' images cheaply.
pub struct Formula {
    source: String,
    inputs: Vec<InputSpec>,
    tree: tir::Tree,
    warnings: Vec<Diagnostic>,
    cache: Mutex<Vec<CacheEntry>>,
}

impl std::fmt::Debug for Formula {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Formula")
            .field("source", &self.source)
            .field("inputs", &self.inputs)
            .finish_non_exhaustive()
    }
}

impl Formula {
    /// Parses and checks `source` against named inputs. Every syntax, name, dtype and shape
    /// error is reported at once, each pointing into the formula.
    pub fn compile(source: &str, inputs: &[InputSpec]) -> Result<Formula, Error> {
        let parsed = voxcalc_syntax::parse(source);
        if !parsed.errors.is_empty() {
            return Err(Error::formula(source, parsed.diagnostics()));
        }
        let mut env = Env::new();
        for (idx, input) in inputs.iter().enumerate() {
            if inputs[..idx].iter().any(|other| other.name == input.name) {
                return Err(Error::Usage(format!(
                    "the input name `{}` is given twice",
                    input.name
                )));
            }
            if !is_identifier(&input.name) {
                return Err(Error::Usage(format!(
                    "`{}` cannot be used as an input name: names are Python identifiers \
                     (letters, digits and _, not starting with a digit)",
                    input.name
                )));
            }
            if input.name == "np" || input.name == "numpy" {
                return Err(Error::Usage(format!(
                    "`{}` is reserved for numpy's functions: choose another input name",
                    input.name
                )));
            }
            env.bind(input.name.clone(), input.dtype, input.shape.clone());
        }
        let tree = voxcalc_check::check(&parsed.expr, &env).map_err(|errors| {
            Error::formula(source, errors.into_iter().map(Diagnostic::from).collect())
        })?;
        let used = voxcalc_check::referenced_images(&parsed.expr, &env);
        if used.is_empty() {
            let end = source.len() as u32;
            let diag = Diagnostic::error(
                "E0301",
                "the formula uses no image, so its result is not an image",
                Label::new(TextRange::new(0, end), "this involves no input"),
            )
            .with_help(match inputs.first() {
                Some(input) => format!(
                    "refer to an input by its name, e.g. `{} * 0 + ({source})`",
                    input.name
                ),
                None => "bind an image with NAME=PATH and use NAME in the formula".to_string(),
            });
            return Err(Error::formula(source, vec![diag]));
        }
        let warnings = inputs
            .iter()
            .filter(|input| !used.contains(&input.name))
            .map(|input| {
                let end = source.len() as u32;
                Diagnostic::warning(
                    "W0001",
                    format!("the input `{}` is not used by the formula", input.name),
                    Label::new(TextRange::new(0, end), "this formula"),
                )
                .with_help("remove it from the inputs, or check the formula for a typo")
            })
            .collect();
        Ok(Formula {
            source: source.to_string(),
            inputs: inputs.to_vec(),
            tree,
            warnings,
            cache: Mutex::new(Vec::new()),
        })
    }

    /// The formula text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The inputs the formula was compiled for.
    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    /// The numpy dtype of the result (before the on-disk rules: bool is saved as uint8, int64
    /// as int32 when the values fit, float16 as float32).
    pub fn dtype(&self) -> DType {
        self.tree.dtype()
    }

    /// The shape of the result.
    pub fn shape(&self) -> Vec<usize> {
        self.tree.shape().dims().to_vec()
    }

    /// Warnings found while checking (e.g. unused inputs).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The typed tree as text: every node with its dtype and shape.
    pub fn typed_tree(&self) -> String {
        self.tree.to_text()
    }

    /// Everything the compiler made of the formula for these images: typed tree, plan
    /// (stages and kernel IR) and each stage's Cranelift IR.
    pub fn explain(&self, images: &[(&str, &Image)]) -> Result<String, Error> {
        let ordered = self.order_images(images)?;
        let layouts = layouts(&ordered);
        let planned = plan(&self.tree, &layouts).map_err(|e| Error::Usage(e.to_string()))?;
        let compiled = compile_plan(&planned, CompileOptions { keep_clif: true })
            .map_err(|e| Error::Usage(e.to_string()))?;
        Ok(format!(
            "formula: {}\n\n== typed tree\n{}\n== plan\n{}",
            self.source,
            self.typed_tree(),
            compiled.explain()
        ))
    }

    /// Evaluates the formula on `images` (by name) into memory.
    pub fn eval(
        &self,
        images: &[(&str, &Image)],
        options: &EvalOptions,
        progress: &dyn Progress,
    ) -> Result<Evaluated, Error> {
        let job = self.prepare(images, options)?;
        let mut data = vec![0u8; job.n_bytes()];
        let run_time = job.run(&mut data, progress)?;
        let (header, data) = job.finish_header(data)?;
        Ok(Evaluated {
            header,
            data,
            warnings: job.warnings,
            timings: Timings {
                compile: job.compile_time,
                run: run_time,
                write: Duration::ZERO,
            },
        })
    }

    /// Evaluates the formula on `images` (by name) and writes the result to `path` atomically:
    /// the kernels write straight into the output file's buffer, and nothing appears at `path`
    /// unless everything succeeded.
    pub fn eval_to_file(
        &self,
        images: &[(&str, &Image)],
        path: &Path,
        options: &EvalOptions,
        progress: &dyn Progress,
    ) -> Result<Written, Error> {
        if !options.allow_overwrite_input {
            let inputs: Vec<&Path> = images.iter().map(|(_, image)| image.path()).collect();
            check_output_not_input(path, &inputs)?;
        }
        let job = self.prepare(images, options)?;
        if job.needs_narrowing() {
            // int64 results are saved as int32 when the values fit (nilearn's rule), which is
            // known only once they are computed: compute in memory, then write.
            let mut data = vec![0u8; job.n_bytes()];
            let run_time = job.run(&mut data, progress)?;
            let (header, data) = job.finish_header(data)?;
            let started = Instant::now();
            let evaluated = Evaluated {
                header,
                data,
                warnings: Vec::new(),
                timings: Timings::default(),
            };
            evaluated.save(path, &options.write)?;
            return Ok(Written {
                scalar: evaluated.scalar(),
                dtype: evaluated.dtype(),
                warnings: job.warnings,
                timings: Timings {
                    compile: job.compile_time,
                    run: run_time,
                    write: started.elapsed(),
                },
            });
        }
        let header = job.header_for(job.out_dtype)?;
        let mut out = OutputImage::create(path, &header, &options.write)?;
        let run_time = job.run(out.data_mut(), progress)?;
        if job.copy_header {
            out.set_cal_range_from_data();
        }
        let scalar = job
            .shape
            .is_empty()
            .then(|| value_f64(out.data(), job.out_dtype, 0));
        let started = Instant::now();
        out.finish()?;
        Ok(Written {
            scalar,
            dtype: job.out_dtype,
            warnings: job.warnings,
            timings: Timings {
                compile: job.compile_time,
                run: run_time,
                write: started.elapsed(),
            },
        })
    }

    /// Puts `images` in the order the formula was compiled for, checking names, dtypes and
    /// shapes.
    fn order_images<'a>(&self, images: &[(&str, &'a Image)]) -> Result<Vec<&'a Image>, Error> {
        for (name, _) in images {
            if !self.inputs.iter().any(|input| input.name == *name) {
                return Err(Error::Usage(format!(
                    "the formula was compiled without an input named `{name}`"
                )));
            }
        }
        self.inputs
            .iter()
            .map(|input| {
                let (_, image) = images
                    .iter()
                    .find(|(name, _)| *name == input.name)
                    .ok_or_else(|| {
                        Error::Usage(format!("no image was given for the input `{}`", input.name))
                    })?;
                if image.dtype() != input.dtype || image.shape() != input.shape {
                    return Err(Error::Usage(format!(
                        "`{}` ({}) is {} {:?}, but the formula was compiled for {} {:?}",
                        input.name,
                        image.path().display(),
                        image.dtype(),
                        image.shape(),
                        input.dtype,
                        input.shape
                    )));
                }
                Ok(*image)
            })
            .collect()
    }

    /// True when the result is an input image itself or a basic-indexing view of it, stored
    /// byte-swapped: numpy then hands nilearn a non-native array.
    fn view_of_swapped_input(&self, ordered: &[&Image]) -> bool {
        let mut node = self.tree.root_node();
        loop {
            match &node.kind {
                tir::NodeKind::Index { base, .. } => node = self.tree.node(*base),
                tir::NodeKind::Input { input_idx, .. } => {
                    let image = ordered[*input_idx];
                    return image.nifti().scaling().is_none()
                        && image.raw().byte_order != ByteOrder::native();
                }
                _ => return false,
            }
        }
    }

    /// The compiled plan for these layouts, from the cache or freshly compiled.
    fn compiled(&self, layouts: &[ImageLayout]) -> Result<(Arc<CompiledPlan>, Duration), Error> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, hit)) = cache.iter().find(|(key, _)| key == layouts) {
            return Ok((hit.clone(), Duration::ZERO));
        }
        let started = Instant::now();
        let planned = plan(&self.tree, layouts).map_err(|e| Error::Usage(e.to_string()))?;
        let compiled = Arc::new(
            compile_plan(&planned, CompileOptions::default())
                .map_err(|e| Error::Usage(format!("internal error: {e}")))?,
        );
        cache.push((layouts.to_vec(), compiled.clone()));
        Ok((compiled, started.elapsed()))
    }

    /// Checks the call and compiles what it needs.
    fn prepare<'a>(
        &'a self,
        images: &[(&str, &'a Image)],
        options: &EvalOptions,
    ) -> Result<Job<'a>, Error> {
        let ordered = self.order_images(images)?;
        check_same_fov(images)?;
        let copy_from = match &options.copy_header_from {
            None => None,
            Some(name) => {
                let (_, image) = images.iter().find(|(n, _)| n == name).ok_or_else(|| {
                    let known: Vec<&str> = images.iter().map(|(n, _)| *n).collect();
                    Error::Usage(format!(
                        "copy_header_from=`{name}` is not one of the inputs ({})",
                        known.join(", ")
                    ))
                })?;
                if image.shape().len() != self.tree.shape().ndim() {
                    return Err(Error::Usage(format!(
                        "cannot copy the header of `{name}`: the result has {} dimensions and \
                         `{name}` has {} (nilearn refuses this too); drop copy_header_from or \
                         make the result {}-D",
                        self.tree.shape().ndim(),
                        image.shape().len(),
                        image.shape().len()
                    )));
                }
                Some(*image)
            }
        };
        let reference = match images.last() {
            Some((_, image)) => *image,
            None => {
                return Err(Error::Usage(
                    "a formula needs at least one input image (its affine and NIfTI version \
                     define the result's)"
                        .to_string(),
                ))
            }
        };
        let layouts = layouts(&ordered);
        let (compiled, compile_time) = self.compiled(&layouts)?;
        let out_dtype = compiled.plan().output().dtype();
        let swapped_view = self.view_of_swapped_input(&ordered);
        let mut warnings = self.warnings.clone();
        if let Some(name) = &options.copy_header_from {
            warnings.retain(|w| !w.message.contains(&format!("`{name}`")));
        }
        Ok(Job {
            source: &self.source,
            compiled,
            compile_time,
            ordered,
            shape: self.shape(),
            out_dtype: if out_dtype == DType::Bool {
                DType::U8
            } else {
                out_dtype
            },
            copy_header: copy_from.is_some(),
            copy_from,
            reference,
            threads: options.threads,
            warnings,
            swapped_view,
        })
    }
}

/// One evaluation in progress.
struct Job<'a> {
    /// The formula text, for run-time error frames.
    source: &'a str,
    compiled: Arc<CompiledPlan>,
    compile_time: Duration,
    ordered: Vec<&'a Image>,
    shape: Vec<usize>,
    /// The dtype the kernels write (bool stored as uint8: same bytes).
    out_dtype: DType,
    copy_header: bool,
    copy_from: Option<&'a Image>,
    reference: &'a Image,
    threads: Option<usize>,
    warnings: Vec<Diagnostic>,
    /// The result is a view of a byte-swapped 64-bit integer input (see `finish_header`).
    swapped_view: bool,
}

impl Job<'_> {
    fn n_bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.out_dtype.size()
    }

    fn needs_narrowing(&self) -> bool {
        matches!(self.out_dtype, DType::I64 | DType::U64) && !self.swapped_view
    }

    fn run(&self, out: &mut [u8], progress: &dyn Progress) -> Result<Duration, Error> {
        let bufs: Vec<InputBuf<'_>> = self
            .ordered
            .iter()
            .map(|image| InputBuf {
                bytes: image.raw().bytes,
                base: 0,
            })
            .collect();
        let started = Instant::now();
        let options = RunOptions {
            threads: self.threads,
            block_voxels: None,
        };
        voxcalc_runtime::run(&self.compiled, &bufs, out, &options, progress).map_err(
            |e| match e {
                voxcalc_runtime::ExecError::Cancelled => Error::Cancelled,
                voxcalc_runtime::ExecError::Check(check) => Error::evaluation(
                    self.source,
                    Diagnostic::error(
                        check.code,
                        check.message,
                        Label::new(check.range, "raised here for these input values"),
                    ),
                ),
                other => Error::Usage(other.to_string()),
            },
        )?;
        Ok(started.elapsed())
    }

    /// The output header for data of `dtype`: a fresh one like nilearn's `new_img_like` (the
    /// last image's affine and NIfTI version), or a copy of `copy_header_from`'s.
    fn header_for(&self, dtype: DType) -> Result<Header, Error> {
        let header = match self.copy_from {
            Some(source) => {
                Header::copied_for_output(source.header(), &self.shape, dtype, (0.0, 0.0))
            }
            None => Header::fresh(
                self.reference.header().version,
                &self.shape,
                dtype,
                self.reference.affine(),
            ),
        };
        let mut header =
            header.map_err(|e| Error::Usage(format!("cannot build the output header: {e}")))?;
        if self.shape.is_empty() && self.copy_from.is_none() {
            // nibabel writes a 0-d image (e.g. `np.mean(img)`) with unit voxel sizes, keeping
            // the sform and qform offsets.
            header.pixdim[1..].fill(1.0);
        }
        Ok(header)
    }

    /// Applies nilearn's int64 rule (int32 when every value fits) and builds the header,
    /// with the calibration range when the header is copied.
    fn finish_header(&self, data: Vec<u8>) -> Result<(Header, Vec<u8>), Error> {
        if self.swapped_view {
            // nilearn's int64 rules test `dtype == int64`, which a byte-swapped int64 array
            // (the result of e.g. `a` or `a[..., 0]` on a big-endian image) is not: such a
            // result is written as int64, unnarrowed and unrefused.
            let header = self.header_for(self.out_dtype)?;
            return Ok(self.with_cal_range(header, data, self.out_dtype));
        }
        let (dtype, data) = narrow_int64(self.out_dtype, data);
        if matches!(dtype, DType::I64 | DType::U64) && !self.copy_header {
            return Err(Error::Usage(format!(
                "the result is {dtype} with values outside the int32 range; nilearn (nibabel) \
                 refuses to save such an image without a header, because many tools cannot \
                 read 64-bit integers. Cast it explicitly, e.g. `(...).astype('float64')`, or \
                 copy a header with copy_header_from"
            )));
        }
        let header = self.header_for(dtype)?;
        Ok(self.with_cal_range(header, data, dtype))
    }

    /// Sets `cal_min`/`cal_max` from the data when the header is copied (as nilearn does).
    fn with_cal_range(&self, mut header: Header, data: Vec<u8>, dtype: DType) -> (Header, Vec<u8>) {
        if self.copy_header {
            let (min, max) = native_range(&data, dtype);
            header.cal_min = min;
            header.cal_max = max;
        }
        (header, data)
    }
}

/// nilearn's `_downcast_from_int64_if_possible`: int64/uint64 data whose values all fit int32
/// are stored as int32.
fn narrow_int64(dtype: DType, data: Vec<u8>) -> (DType, Vec<u8>) {
    let values: Vec<i128> = match dtype {
        DType::I64 => data
            .chunks_exact(8)
            .map(|c| i128::from(i64::from_ne_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect(),
        DType::U64 => data
            .chunks_exact(8)
            .map(|c| i128::from(u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect(),
        _ => return (dtype, data),
    };
    let fits = values
        .iter()
        .all(|&v| v >= i128::from(i32::MIN) && v <= i128::from(i32::MAX));
    if !fits {
        return (dtype, data);
    }
    let narrowed = values
        .iter()
        .flat_map(|&v| (v as i32).to_ne_bytes())
        .collect();
    (DType::I32, narrowed)
}

/// Element `idx` of native-order `data` of `dtype`, as f64.
fn value_f64(data: &[u8], dtype: DType, idx: usize) -> f64 {
    let size = dtype.size();
    let Some(bytes) = data.get(idx * size..(idx + 1) * size) else {
        return f64::NAN;
    };
    let mut b8 = [0u8; 8];
    b8[..size].copy_from_slice(bytes);
    match dtype {
        DType::Bool | DType::U8 => f64::from(bytes[0]),
        DType::I8 => f64::from(bytes[0] as i8),
        DType::U16 => f64::from(u16::from_ne_bytes([bytes[0], bytes[1]])),
        DType::I16 => f64::from(i16::from_ne_bytes([bytes[0], bytes[1]])),
        DType::U32 => f64::from(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        DType::I32 => f64::from(i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        DType::F32 | DType::F16 => {
            f64::from(f32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        }
        DType::U64 => u64::from_ne_bytes(b8) as f64,
        DType::I64 => i64::from_ne_bytes(b8) as f64,
        DType::F64 => f64::from_ne_bytes(b8),
    }
}

/// The layout the kernels read each image in: Fortran order, the file's byte order, and for
/// scaled images the raw storage dtype with `raw * slope + inter` applied on load (as nibabel
/// does), so no float64 copy of an input is ever made.
fn layouts(images: &[&Image]) -> Vec<ImageLayout> {
    images
        .iter()
        .map(|image| {
            let raw = image.raw();
            let order = if raw.byte_order == ByteOrder::native() {
                IrByteOrder::Native
            } else {
                IrByteOrder::Swapped
            };
            let layout = ImageLayout::fortran(&image.shape(), order);
            match image.nifti().scaling() {
                Some(scaling) => layout.scaled(raw.dtype, scaling.slope, scaling.inter),
                None => layout,
            }
        })
        .collect()
}

/// nilearn's `check_same_fov`: every image has the same shape[:3] and `np.allclose` affines.
fn check_same_fov(images: &[(&str, &Image)]) -> Result<(), Error> {
    let Some(((first_name, first), rest)) = images.split_first() else {
        return Ok(());
    };
    for (name, image) in rest {
        let a = first.shape();
        let b = image.shape();
        let a3 = &a[..a.len().min(3)];
        let b3 = &b[..b.len().min(3)];
        if a3 != b3 {
            return Err(Error::Usage(format!(
                "`{first_name}` and `{name}` do not cover the same voxel grid: their spatial \
                 shapes are {a3:?} and {b3:?}; resample one onto the other first (e.g. \
                 nilearn.image.resample_to_img)"
            )));
        }
        if !allclose(first.affine(), image.affine()) {
            return Err(Error::Usage(format!(
                "`{first_name}` and `{name}` have different affines (np.allclose with rtol \
                 1e-5, atol 1e-8 fails):\n{}\nvs\n{}\nresample one onto the other first",
                format_affine(first.affine()),
                format_affine(image.affine())
            )));
        }
    }
    Ok(())
}

/// `np.allclose(a, b)`: `|a - b| <= 1e-8 + 1e-5 * |b|` everywhere (NaN never close).
fn allclose(a: &[[f64; 4]; 4], b: &[[f64; 4]; 4]) -> bool {
    a.iter().flatten().zip(b.iter().flatten()).all(|(&x, &y)| {
        if x == y {
            return true;
        }
        (x - y).abs() <= 1e-8 + 1e-5 * y.abs()
    })
}

fn format_affine(a: &[[f64; 4]; 4]) -> String {
    a.iter()
        .map(|row| {
            format!(
                "  [{:>10.4} {:>10.4} {:>10.4} {:>10.4}]",
                row[0], row[1], row[2], row[3]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Evaluates a formula once on named images, as nilearn's
/// `math_img(formula, copy_header_from=..., **imgs)`: the result in memory.
pub fn math_img(
    formula: &str,
    images: &[(&str, &Image)],
    copy_header_from: Option<&str>,
) -> Result<Evaluated, Error> {
    let specs: Vec<InputSpec> = images
        .iter()
        .map(|(name, image)| InputSpec::of(name, image))
        .collect();
    let compiled = Formula::compile(formula, &specs)?;
    let options = EvalOptions {
        copy_header_from: copy_header_from.map(str::to_string),
        ..EvalOptions::default()
    };
    compiled.eval(images, &options, &NoProgress)
}

#[cfg(test)]
mod tests {
    use voxcalc_nifti::NiftiVersion;

    use super::*;

    fn image(label: &str, values: &[i16]) -> Image {
        let affine = [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let header = Header::fresh(NiftiVersion::Nifti1, &[values.len()], DType::I16, &affine)
            .expect("a valid header");
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
        Image::from_memory(label, header, &data).expect("an in-memory image")
    }

    /// numpy's run-time errors come back as `Error::Evaluation`, drawn as a caret frame under
    /// the operation that raised them.
    #[test]
    fn runtime_errors_point_at_the_operation_that_raised_them() {
        let a = image("a", &[1, 2, 3]);
        let m = image("m", &[0, 0, 0]);
        let Err(err) = math_img("a - np.max(a[m > 0])", &[("a", &a), ("m", &m)], None) else {
            panic!("the maximum of an empty selection evaluated");
        };
        assert!(matches!(err, Error::Evaluation { .. }), "{err:?}");
        assert_eq!(err.diagnostics()[0].code, "E0401");
        let text = err.to_string();
        assert!(
            text.contains("zero-size array to reduction operation maximum which has no identity"),
            "{text}"
        );
        assert!(text.contains("    ^^^^^^^^^^^^^^^^"), "{text}");

        let b = image("b", &[2, -1, 0]);
        let Err(err) = math_img("a ** b", &[("a", &a), ("b", &b)], None) else {
            panic!("a negative integer exponent evaluated");
        };
        assert!(
            err.to_string()
                .contains("integers to negative integer powers are not allowed"),
            "{err}"
        );
        let m = image("m", &[0, 1, 0]);
        math_img("a - np.max(a[m > 0])", &[("a", &a), ("m", &m)], None)
            .expect("a non-empty selection evaluates");
    }
}
