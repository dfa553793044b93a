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
    check_output_not_input, native_range, ByteOrder, Header, NiftiError, OutputStream, RawView,
    WriteOptions,
};
use voxcalc_runtime::{ExecError, NoProgress, Progress, RunOptions, StreamError};
use voxcalc_syntax::{Diagnostic, Label, TextRange};
use voxcalc_types::DType;

use crate::streamed::{compile_stream, run_passes, CompiledStream, PassError, Phases, StreamEntry};
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
    /// Running the kernels. When the result is streamed to a file this is the wall time of the
    /// whole computation, which overlaps writing the data (the writer compresses one window
    /// while the kernels compute the next).
    pub run: Duration,
    /// Time spent in the file writer (zero for in-memory results): handing it the data, which
    /// overlaps the computation when streamed, plus finishing the file.
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

    /// Element `idx` as f64 (for summaries and tests); NaN when `idx` is out of range.
    pub fn value_f64(&self, idx: usize) -> f64 {
        if idx >= self.n_elements() {
            return f64::NAN;
        }
        let shape = self.shape();
        native_view(&self.data, self.dtype(), &shape).value_f64(idx)
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
        let mut out = OutputStream::create(path, &self.header, options)?;
        out.write_data(&self.data)?;
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
    /// Streamed plans (and plans found not to stream) by layouts and streamed image.
    streams: Mutex<Vec<StreamEntry>>,
    /// Compile time not yet reported by an evaluation (e.g. spent by `stream_passes`).
    unreported: Mutex<Duration>,
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
            streams: Mutex::new(Vec::new()),
            unreported: Mutex::new(Duration::ZERO),
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
    /// the result is computed window by window and streamed to the file as it is computed, so
    /// memory holds two windows rather than the whole result, and nothing appears at `path`
    /// unless everything succeeded. (An int64 result is the exception: whether it is saved as
    /// int32 depends on all its values, so it is computed in memory first.)
    pub fn eval_to_file(
        &self,
        images: &[(&str, &Image)],
        path: &Path,
        options: &EvalOptions,
        progress: &dyn Progress,
    ) -> Result<Written, Error> {
        if !options.allow_overwrite_input {
            // An image built in memory has a label, not a path: there is no file to protect.
            let inputs: Vec<&Path> = images
                .iter()
                .filter(|(_, image)| !image.is_in_memory())
                .map(|(_, image)| image.path())
                .collect();
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
        let mut out = OutputStream::create(path, &header, &options.write)?;
        let dtype = job.out_dtype;
        let mut range = job.copy_header.then(|| RangeOfChunks::new(dtype));
        let scalar_result = job.shape.is_empty();
        let mut first_value = None;
        let mut write_time = Duration::ZERO;
        let mut sink = |chunk: &[u8]| -> Result<(), NiftiError> {
            if let Some(range) = &mut range {
                range.add(chunk);
            }
            if scalar_result && first_value.is_none() && chunk.len() >= dtype.size() {
                first_value = Some(native_view(chunk, dtype, &[]).value_f64(0));
            }
            let started = Instant::now();
            let res = out.write_data(chunk);
            write_time += started.elapsed();
            res
        };
        let run_time = job.run_streaming(&mut sink, progress)?;
        if let Some(range) = range {
            // nilearn sets cal_min/cal_max from the data when it copies a header.
            let (min, max) = range.finish();
            out.header_mut().cal_min = min;
            out.header_mut().cal_max = max;
        }
        let started = Instant::now();
        out.finish()?;
        write_time += started.elapsed();
        Ok(Written {
            scalar: first_value,
            dtype,
            warnings: job.warnings,
            timings: Timings {
                compile: job.compile_time,
                run: run_time,
                write: write_time,
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

    /// The compiled plan for these layouts, from the cache or freshly compiled (the time
    /// spent is reported by the next evaluation: [`Formula::take_unreported`]).
    fn compiled(&self, layouts: &[ImageLayout]) -> Result<Arc<CompiledPlan>, Error> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, hit)) = cache.iter().find(|(key, _)| key == layouts) {
            return Ok(hit.clone());
        }
        let started = Instant::now();
        let planned = plan(&self.tree, layouts).map_err(|e| Error::Usage(e.to_string()))?;
        let compiled = Arc::new(
            compile_plan(&planned, CompileOptions::default())
                .map_err(|e| Error::Usage(format!("internal error: {e}")))?,
        );
        cache.push((layouts.to_vec(), compiled.clone()));
        self.add_unreported(started.elapsed());
        Ok(compiled)
    }

    /// The plan for these layouts rewritten to stream image `image` (of numpy shape `shape`)
    /// volume by volume, compiled; `None` when the formula cannot read that image as a stream.
    fn compiled_stream(
        &self,
        layouts: &[ImageLayout],
        image: usize,
        shape: &[usize],
    ) -> Result<Option<Arc<CompiledStream>>, Error> {
        let mut cache = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, hit)) = cache
            .iter()
            .find(|((key, idx), _)| key == layouts && *idx == image)
        {
            return Ok(hit.clone());
        }
        let started = Instant::now();
        // Planned, not compiled: only the rewritten plan's kernels ever run.
        let planned = plan(&self.tree, layouts).map_err(|e| Error::Usage(e.to_string()))?;
        let stream = compile_stream(&planned, layouts, image, shape)?.map(Arc::new);
        cache.push(((layouts.to_vec(), image), stream.clone()));
        self.add_unreported(started.elapsed());
        Ok(stream)
    }

    /// Adds compile time for the next evaluation to report.
    fn add_unreported(&self, time: Duration) {
        *self.unreported.lock().unwrap_or_else(|e| e.into_inner()) += time;
    }

    /// The compile time spent since the last evaluation reported it (compiling for this call,
    /// or earlier for `stream_passes`), now reported.
    fn take_unreported(&self) -> Duration {
        std::mem::take(&mut *self.unreported.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// How many times this formula, evaluated on `images`, reads the input `name` when it reads
    /// it volume by volume as it is inflated (see [`Image::open_streamed`]); `None` when it
    /// cannot. It can when every use of the input is a sum or product over its last axis (time)
    /// in numpy's order along that axis: sums and means take one pass over the volumes, a
    /// variance or standard deviation two (its mean first).
    pub fn stream_passes(
        &self,
        images: &[(&str, &Image)],
        name: &str,
    ) -> Result<Option<usize>, Error> {
        let ordered = self.order_images(images)?;
        let Some(idx) = self.inputs.iter().position(|input| input.name == name) else {
            return Ok(None);
        };
        let stream = self.compiled_stream(&layouts(&ordered), idx, &ordered[idx].shape())?;
        Ok(stream.map(|s| s.plan.n_passes))
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
        let streamed: Vec<usize> = (0..ordered.len())
            .filter(|&i| ordered[i].is_streamed())
            .collect();
        let run = match streamed[..] {
            [] => Run::Whole(self.compiled(&layouts)?),
            [idx] => {
                let stream = self.compiled_stream(&layouts, idx, &ordered[idx].shape())?;
                Run::Streamed(stream.ok_or_else(|| {
                    Error::Usage(format!(
                        "`{}` ({}) was opened to be streamed volume by volume, but this formula \
                         reads it other than through sums or means over its last axis: open it \
                         with Image::load",
                        self.inputs[idx].name,
                        ordered[idx].path().display()
                    ))
                })?)
            }
            _ => {
                return Err(Error::Usage(
                    "only one input can be streamed per evaluation: open the others with \
                     Image::load"
                        .to_string(),
                ))
            }
        };
        let compile_time = self.take_unreported();
        let out_dtype = match &run {
            Run::Whole(compiled) => compiled.plan().output().dtype(),
            Run::Streamed(stream) => stream.rest.plan().output().dtype(),
        };
        let swapped_view = self.view_of_swapped_input(&ordered);
        let mut warnings = self.warnings.clone();
        if let Some(name) = &options.copy_header_from {
            warnings.retain(|w| !w.message.contains(&format!("`{name}`")));
        }
        Ok(Job {
            source: &self.source,
            run,
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

/// What an evaluation runs.
enum Run {
    /// The formula's plan, over whole images.
    Whole(Arc<CompiledPlan>),
    /// The plan rewritten to stream the one streamed input.
    Streamed(Arc<CompiledStream>),
}

/// One evaluation in progress.
struct Job<'a> {
    /// The formula text, for run-time error frames.
    source: &'a str,
    run: Run,
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

    fn input_bufs(&self) -> Vec<InputBuf<'_>> {
        self.ordered
            .iter()
            .map(|image| InputBuf {
                bytes: image.raw().bytes,
                base: 0,
            })
            .collect()
    }

    fn run_options(&self) -> RunOptions {
        RunOptions {
            threads: self.threads,
            ..RunOptions::default()
        }
    }

    /// Computes the result into `out` (all of it at once).
    fn run(&self, out: &mut [u8], progress: &dyn Progress) -> Result<Duration, Error> {
        let started = Instant::now();
        let options = self.run_options();
        match &self.run {
            Run::Whole(compiled) => {
                let bufs = self.input_bufs();
                voxcalc_runtime::run(compiled, &bufs, out, &options, progress)
                    .map_err(|e| self.exec_error(e))?;
            }
            Run::Streamed(stream) => {
                let phases = Phases::new(progress, &stream.plan, self.n_voxels());
                let carries = self.run_passes(stream, &phases)?;
                let bufs = self.bufs_with(&carries);
                voxcalc_runtime::run(&stream.rest, &bufs, out, &options, &phases)
                    .map_err(|e| self.exec_error(e))?;
            }
        }
        Ok(started.elapsed())
    }

    /// Computes the result window by window, handing each to `sink` in order.
    fn run_streaming(
        &self,
        sink: &mut (dyn FnMut(&[u8]) -> Result<(), NiftiError> + Send),
        progress: &dyn Progress,
    ) -> Result<Duration, Error> {
        let started = Instant::now();
        let options = self.run_options();
        let stream_error = |e| match e {
            StreamError::Exec(err) => self.exec_error(err),
            StreamError::Sink(err) => Error::Image(err),
        };
        match &self.run {
            Run::Whole(compiled) => {
                let bufs = self.input_bufs();
                voxcalc_runtime::run_streaming(compiled, &bufs, sink, &options, progress)
                    .map_err(stream_error)?;
            }
            Run::Streamed(stream) => {
                let phases = Phases::new(progress, &stream.plan, self.n_voxels());
                let carries = self.run_passes(stream, &phases)?;
                let bufs = self.bufs_with(&carries);
                voxcalc_runtime::run_streaming(&stream.rest, &bufs, sink, &options, &phases)
                    .map_err(stream_error)?;
            }
        }
        Ok(started.elapsed())
    }

    /// Output voxels.
    fn n_voxels(&self) -> u64 {
        self.shape.iter().product::<usize>() as u64
    }

    /// Runs the passes over the streamed input, returning the carries.
    fn run_passes(
        &self,
        stream: &CompiledStream,
        progress: &Phases<'_>,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let image = self.ordered[stream.plan.image];
        let bufs = self.input_bufs();
        run_passes(stream, image, &bufs, &self.run_options(), progress).map_err(|e| match e {
            PassError::Exec(err) => self.exec_error(err),
            PassError::Image(err) => Error::Image(err),
        })
    }

    /// The input buffers followed by the carries of a streamed plan (the rest plan's images).
    fn bufs_with<'b>(&'b self, carries: &'b [Vec<u8>]) -> Vec<InputBuf<'b>> {
        let mut bufs = self.input_bufs();
        bufs.extend(carries.iter().map(|c| InputBuf { bytes: c, base: 0 }));
        bufs
    }

    /// The facade's error for a failed run: numpy's run-time errors as a frame under the
    /// operation that raised them.
    fn exec_error(&self, err: ExecError) -> Error {
        match err {
            ExecError::Cancelled => Error::Cancelled,
            ExecError::Check(check) => Error::evaluation(
                self.source,
                Diagnostic::error(
                    check.code,
                    check.message,
                    Label::new(check.range, "raised here for these input values"),
                ),
            ),
            other => Error::Usage(other.to_string()),
        }
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
/// are stored as int32. The data are narrowed in place, so no second copy of a large result is
/// made.
fn narrow_int64(dtype: DType, mut data: Vec<u8>) -> (DType, Vec<u8>) {
    let value = |bytes: &[u8]| -> i128 {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(bytes);
        match dtype {
            DType::I64 => i128::from(i64::from_ne_bytes(raw)),
            _ => i128::from(u64::from_ne_bytes(raw)),
        }
    };
    if !matches!(dtype, DType::I64 | DType::U64) {
        return (dtype, data);
    }
    let fits = data
        .chunks_exact(8)
        .all(|bytes| i32::try_from(value(bytes)).is_ok());
    if !fits {
        return (dtype, data);
    }
    let n_elements = data.len() / 8;
    // Element `idx` moves from byte 8 * idx to byte 4 * idx: only bytes of elements already
    // read are overwritten.
    for idx in 0..n_elements {
        let narrowed = value(&data[8 * idx..8 * idx + 8]) as i32;
        data[4 * idx..4 * idx + 4].copy_from_slice(&narrowed.to_ne_bytes());
    }
    data.truncate(4 * n_elements);
    data.shrink_to_fit();
    (DType::I32, data)
}

/// Native-order result data as a [`RawView`], to read elements with its conversions.
fn native_view<'a>(bytes: &'a [u8], dtype: DType, shape: &'a [usize]) -> RawView<'a> {
    RawView {
        bytes,
        dtype,
        byte_order: ByteOrder::native(),
        shape,
    }
}

/// [`native_range`] of data that arrive in chunks, with the same result as over the whole
/// data: NaN for both bounds if any element is NaN (numpy's `np.min`/`np.max`, which nilearn
/// uses for `cal_min`/`cal_max`), `(0, 0)` for no data. The chunks are folded in order with
/// the same `min`/`max` as `native_range`'s own fold, so even the sign of a zero bound agrees.
struct RangeOfChunks {
    dtype: DType,
    range: Option<(f64, f64)>,
}

impl RangeOfChunks {
    fn new(dtype: DType) -> RangeOfChunks {
        RangeOfChunks { dtype, range: None }
    }

    fn add(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        let (min, max) = native_range(chunk, self.dtype);
        self.range = Some(match self.range {
            None => (min, max),
            Some((lo, _)) if lo.is_nan() || min.is_nan() => (f64::NAN, f64::NAN),
            Some((lo, hi)) => (lo.min(min), hi.max(max)),
        });
    }

    fn finish(self) -> (f64, f64) {
        self.range.unwrap_or((0.0, 0.0))
    }
}

/// The layout the kernels read each image in: Fortran order, the file's byte order, and for
/// scaled images the raw storage dtype with `raw * slope + inter` applied on load (as nibabel
/// does), so no float64 copy of an input is ever made.
/// Runs typical formulas through the whole pipeline (parse, check, plan, compile) for small
/// images of typical dtypes: an element-wise `where`/`log` formula over a mask, an int16 and a
/// float32 volume, and a z-score over time of an int16 series (time means and standard
/// deviations, broadcast back over time). The first compilation in a process otherwise pays for
/// paging in the code paths it uses (tens of page faults, 0.1-0.3 ms); see [`crate::warm_up`].
pub(crate) fn warm_up() {
    let spec = |name: &str, dtype: DType, shape: &[usize]| InputSpec {
        name: name.to_string(),
        dtype,
        shape: shape.to_vec(),
    };
    let inputs = [
        spec("mask", DType::U8, &[8, 2, 2]),
        spec("anat", DType::I16, &[8, 2, 2]),
        spec("img", DType::F32, &[8, 2, 2]),
        spec("bold", DType::I16, &[8, 2, 2, 3]),
    ];
    let layouts: Vec<ImageLayout> = inputs
        .iter()
        .map(|i| ImageLayout::fortran(&i.shape, IrByteOrder::Native))
        .collect();
    for text in [
        "np.where(mask > 0, np.log(np.abs(anat) + 1) * 2.5 - img / (anat + 1.0), 0)",
        "(bold - np.mean(bold, axis=-1, keepdims=True)) / np.std(bold, axis=-1, keepdims=True)",
    ] {
        // A failure would show again, with its message, where a real formula meets it.
        if let Ok(formula) = Formula::compile(text, &inputs) {
            let _ = formula.compiled(&layouts);
        }
    }
}

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
pub(crate) mod tests {
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

    /// A directory of its own under the system temp dir, removed when dropped (the facade's
    /// tests share it).
    pub(crate) struct ScratchDir(pub(crate) std::path::PathBuf);

    impl ScratchDir {
        pub(crate) fn new(name: &str) -> ScratchDir {
            let dir =
                std::env::temp_dir().join(format!("voxcalc-facade-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("a scratch directory");
            ScratchDir(dir)
        }
    }

    impl Drop for ScratchDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn same_f64(a: f64, b: f64) -> bool {
        a == b || (a.is_nan() && b.is_nan())
    }

    /// A streamed file holds exactly what the in-memory evaluation computes, with the same
    /// header (dtype, shape, calibration range with its NaN rule), in every output format;
    /// a 0-d result reports its value; an int64 result is still narrowed to int32.
    #[test]
    fn streamed_files_hold_the_in_memory_result() {
        let dir = ScratchDir::new("streamed");
        let values: Vec<i16> = (0..1000).map(|i| ((i * 37) % 211) as i16 - 60).collect();
        let a = image("a", &values);
        let b = image("b", &values.iter().map(|v| v / 3).collect::<Vec<_>>());
        let cases: &[(&str, Option<&str>, DType)] = &[
            ("a * 2.5 - b", Some("a"), DType::F64),
            ("a * 2.5 - b", None, DType::F64),
            ("np.log(a)", Some("b"), DType::F32),
            ("a > b", Some("a"), DType::U8),
            ("np.mean(a, keepdims=True) + b", Some("a"), DType::F64),
            ("a.astype('int64') * 3 + b", Some("a"), DType::I32),
            ("a.astype('int64') * 3 + b", None, DType::I32),
            ("np.mean(a) + np.max(b)", None, DType::F64),
        ];
        for &(formula, copy_from, dtype) in cases {
            let specs = [InputSpec::of("a", &a), InputSpec::of("b", &b)];
            let compiled = Formula::compile(formula, &specs).expect(formula);
            let options = EvalOptions {
                copy_header_from: copy_from.map(str::to_string),
                threads: Some(2),
                ..EvalOptions::default()
            };
            let images = [("a", &a), ("b", &b)];
            let want = compiled
                .eval(&images, &options, &NoProgress)
                .expect(formula);
            assert_eq!(want.dtype(), dtype, "{formula}");
            for name in ["out.nii", "out.nii.gz", "out.hdr", "out.img.gz"] {
                let case = format!("{formula} (copy_header_from {copy_from:?}) -> {name}");
                let path = dir.0.join(name);
                let written = compiled
                    .eval_to_file(&images, &path, &options, &NoProgress)
                    .expect(&case);
                assert_eq!(written.dtype, dtype, "{case}");
                match want.scalar() {
                    Some(value) => assert!(
                        written.scalar.is_some_and(|v| same_f64(v, value)),
                        "{case}: {:?} vs {value}",
                        written.scalar
                    ),
                    None => assert_eq!(written.scalar, None, "{case}"),
                }
                let got = Image::load(&path).expect(&case);
                assert!(got.raw().bytes == want.data.as_slice(), "{case}");
                assert_eq!(got.shape(), want.shape(), "{case}");
                assert_eq!(got.header().dtype(), Some(dtype), "{case}");
                for (read, computed) in [
                    (got.header().cal_min, want.header.cal_min),
                    (got.header().cal_max, want.header.cal_max),
                ] {
                    assert!(
                        same_f64(read, f64::from(computed as f32)),
                        "{case}: cal {read} vs {computed}"
                    );
                }
                if copy_from.is_some() && formula.starts_with("np.log") {
                    assert!(got.header().cal_min.is_nan(), "{case}: log of negatives");
                }
                let (cal_min, cal_max) = (got.header().cal_min, got.header().cal_max);
                if copy_from.is_some() {
                    assert!(
                        cal_min.is_nan() || cal_min < cal_max,
                        "{case}: cal range set"
                    );
                } else {
                    assert_eq!((cal_min, cal_max), (0.0, 0.0), "{case}");
                }
            }
        }
    }

    /// The calibration range folded over chunks equals `native_range` over the whole data,
    /// bit for bit, wherever the data are cut.
    #[test]
    fn the_range_of_chunks_is_the_range_of_the_whole() {
        let f64s =
            |values: &[f64]| -> Vec<u8> { values.iter().flat_map(|v| v.to_ne_bytes()).collect() };
        let cases: Vec<(DType, Vec<u8>)> = vec![
            (DType::F64, f64s(&[3.0, -0.0, 0.0, 7.5, -2.0, 0.0, -0.0])),
            (DType::F64, f64s(&[0.0, -0.0, 0.0])),
            (DType::F64, f64s(&[-0.0, 0.0, -0.0])),
            (DType::F64, f64s(&[1.0, f64::NAN, -4.0, f64::INFINITY])),
            (DType::F64, f64s(&[f64::NEG_INFINITY, 2.0, 5.0, f64::NAN])),
            (
                DType::F32,
                [1.5f32, -3.25, f32::NAN, 0.0]
                    .iter()
                    .flat_map(|v| v.to_ne_bytes())
                    .collect(),
            ),
            (
                DType::I64,
                [i64::MIN, 5, i64::MAX, -1]
                    .iter()
                    .flat_map(|v| v.to_ne_bytes())
                    .collect(),
            ),
            (DType::U8, vec![200, 3, 255, 0, 17]),
            (DType::I16, Vec::new()),
        ];
        for (dtype, data) in cases {
            let (want_min, want_max) = native_range(&data, dtype);
            let n = data.len() / dtype.size();
            for chunk_elems in 1..=n.max(1) {
                let mut range = RangeOfChunks::new(dtype);
                for chunk in data.chunks(chunk_elems * dtype.size()) {
                    range.add(chunk);
                }
                let (min, max) = range.finish();
                let case = format!("{dtype} {data:?} in chunks of {chunk_elems}");
                assert_eq!(min.to_bits(), want_min.to_bits(), "{case}: min {min}");
                assert_eq!(max.to_bits(), want_max.to_bits(), "{case}: max {max}");
            }
        }
        let mut empty = RangeOfChunks::new(DType::F32);
        empty.add(&[]);
        assert_eq!(empty.finish(), (0.0, 0.0));
    }

    /// int64 results are narrowed to int32 exactly when every value fits, value for value.
    #[test]
    fn int64_results_are_narrowed_only_when_every_value_fits() {
        let i64s =
            |values: &[i64]| -> Vec<u8> { values.iter().flat_map(|v| v.to_ne_bytes()).collect() };
        let i32s =
            |values: &[i32]| -> Vec<u8> { values.iter().flat_map(|v| v.to_ne_bytes()).collect() };
        let fitting = [0, -1, 7, i64::from(i32::MIN), i64::from(i32::MAX), -123_456];
        assert_eq!(
            narrow_int64(DType::I64, i64s(&fitting)),
            (DType::I32, i32s(&[0, -1, 7, i32::MIN, i32::MAX, -123_456]))
        );
        for wide in [i64::from(i32::MAX) + 1, i64::from(i32::MIN) - 1, i64::MIN] {
            let data = i64s(&[1, 2, wide, 3]);
            assert_eq!(narrow_int64(DType::I64, data.clone()), (DType::I64, data));
        }
        let u64s =
            |values: &[u64]| -> Vec<u8> { values.iter().flat_map(|v| v.to_ne_bytes()).collect() };
        assert_eq!(
            narrow_int64(DType::U64, u64s(&[5, 2_147_483_647])),
            (DType::I32, i32s(&[5, i32::MAX]))
        );
        let data = u64s(&[5, 2_147_483_648]);
        assert_eq!(narrow_int64(DType::U64, data.clone()), (DType::U64, data));
        assert_eq!(
            narrow_int64(DType::I64, Vec::new()),
            (DType::I32, Vec::new())
        );
        assert_eq!(
            narrow_int64(DType::I16, vec![1, 2]),
            (DType::I16, vec![1, 2])
        );
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
