//! Evaluating a formula over a streamed input ([`crate::Image::open_streamed`]): the passes of
//! a [`StreamPlan`] read the gzipped image volume by volume as it is inflated, then the rest
//! of the plan runs with the finished carries as extra inputs. See `voxcalc_ir::stream`.

use std::sync::atomic::{AtomicU64, Ordering};

use voxcalc_ir::plan::{ImageLayout, Plan};
use voxcalc_ir::stream::{stream_last_axis, StreamPlan};
use voxcalc_ir::InputBuf;
use voxcalc_jit::{compile_plan, CompileOptions, CompiledPlan};
use voxcalc_runtime::{ExecError, Passes, Progress, RunOptions};

use crate::{Error, Image};

/// Inflated bytes handed over at a time (rounded to whole volumes): large enough that the
/// hand-over costs nothing measurable, small enough that two chunks are a few MB.
const CHUNK_BYTES: usize = 8 << 20;

/// A streamed plan and its compiled kernels.
#[derive(Debug)]
pub(crate) struct CompiledStream {
    pub(crate) plan: StreamPlan,
    pub(crate) accumulate: CompiledPlan,
    pub(crate) rest: CompiledPlan,
}

/// The image layouts and streamed image a [`CompiledStream`] was built for (`None`: the plan
/// cannot stream that image).
pub(crate) type StreamEntry = (
    (Vec<ImageLayout>, usize),
    Option<std::sync::Arc<CompiledStream>>,
);

/// Rewrites and compiles `plan` to stream image `image` of `layouts` (numpy shape `shape`);
/// `None` when the plan cannot stream it.
pub(crate) fn compile_stream(
    plan: &Plan,
    layouts: &[ImageLayout],
    image: usize,
    shape: &[usize],
) -> Result<Option<CompiledStream>, Error> {
    let Some(stream) = stream_last_axis(plan, image, layouts.len(), shape) else {
        return Ok(None);
    };
    let internal = |e: voxcalc_jit::JitError| Error::Usage(format!("internal error: {e}"));
    let accumulate =
        compile_plan(&stream.accumulate, CompileOptions::default()).map_err(internal)?;
    let rest = compile_plan(&stream.rest, CompileOptions::default()).map_err(internal)?;
    Ok(Some(CompiledStream {
        plan: stream,
        accumulate,
        rest,
    }))
}

/// Progress over the passes and the final stages: each pass counts as much as the output.
pub(crate) struct Phases<'p> {
    inner: &'p dyn Progress,
    n_out: u64,
    n_volumes: u64,
    total: u64,
    volumes_done: AtomicU64,
}

impl<'p> Phases<'p> {
    pub(crate) fn new(inner: &'p dyn Progress, stream: &StreamPlan, n_out: u64) -> Phases<'p> {
        Phases {
            inner,
            n_out,
            n_volumes: stream.n_volumes,
            total: n_out.saturating_mul(stream.n_passes as u64 + 1),
            volumes_done: AtomicU64::new(0),
        }
    }

    /// One more volume of a pass is done.
    fn volume_done(&self) {
        let done = self.volumes_done.fetch_add(1, Ordering::Relaxed) as u128;
        let share = |v: u128| v * self.n_out as u128 / self.n_volumes.max(1) as u128;
        let step = share(done + 1) - share(done);
        self.inner.advance(step as u64, self.total);
    }
}

impl Progress for Phases<'_> {
    fn advance(&self, voxels: u64, _total: u64) {
        self.inner.advance(voxels, self.total);
    }

    fn cancelled(&self) -> bool {
        self.inner.cancelled()
    }
}

/// Runs every pass of `stream` over `image` (image `stream.plan.image` of `bufs`) and returns
/// the finished carries.
pub(crate) fn run_passes(
    stream: &CompiledStream,
    image: &Image,
    bufs: &[InputBuf<'_>],
    options: &RunOptions,
    progress: &Phases<'_>,
) -> Result<Vec<Vec<u8>>, PassError> {
    let plan = &stream.plan;
    let mut passes = Passes::new(plan, &stream.accumulate, bufs, options)?;
    let volume_bytes = plan.volume_elems as usize * image.raw().dtype.size();
    let chunk = (CHUNK_BYTES / volume_bytes.max(1)).max(1) * volume_bytes;
    for pass in 0..plan.n_passes {
        let mut t = 0u64;
        let mut consume = |bytes: &[u8]| -> Result<(), ExecError> {
            for volume in bytes.chunks(volume_bytes.max(1)) {
                passes.volume(pass, t, volume, progress)?;
                progress.volume_done();
                t += 1;
            }
            Ok(())
        };
        image.nifti().stream_data(chunk, &mut consume)??;
    }
    Ok(passes.finish())
}

/// Why the passes stopped: a kernel run (or cancellation), or reading the image.
pub(crate) enum PassError {
    Exec(ExecError),
    Image(voxcalc_nifti::NiftiError),
}

impl From<ExecError> for PassError {
    fn from(err: ExecError) -> PassError {
        PassError::Exec(err)
    }
}

impl From<voxcalc_nifti::NiftiError> for PassError {
    fn from(err: voxcalc_nifti::NiftiError) -> PassError {
        PassError::Image(err)
    }
}

#[cfg(test)]
mod tests {
    use voxcalc_nifti::{Header, NiftiVersion, WriteOptions};
    use voxcalc_runtime::NoProgress;
    use voxcalc_types::DType;

    use crate::formula::tests::ScratchDir;
    use crate::{EvalOptions, Formula, Image, InputSpec};

    /// Writes a 6x5x4x11 int16 series as `.nii` and `.nii.gz`.
    fn series(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let shape = [6, 5, 4, 11];
        let n: usize = shape.iter().product();
        let affine = [
            [2.0, 0.0, 0.0, -10.0],
            [0.0, 2.0, 0.0, 4.0],
            [0.0, 0.0, 2.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let header = Header::fresh(NiftiVersion::Nifti1, &shape, DType::I16, &affine)
            .expect("a valid header");
        let data: Vec<u8> = (0..n)
            .flat_map(|i| ((((i * 7919) % 4001) as i32 - 1500) as i16).to_ne_bytes())
            .collect();
        let image = crate::Evaluated {
            header,
            data,
            warnings: Vec::new(),
            timings: crate::Timings::default(),
        };
        let (nii, gz) = (dir.join("bold.nii"), dir.join("bold.nii.gz"));
        for path in [&nii, &gz] {
            image.save(path, &WriteOptions::default()).expect("saved");
        }
        (nii, gz)
    }

    /// A streamed `.nii.gz` gives the bytes the mapped `.nii` gives, in memory and in a file,
    /// for one- and two-pass formulas and any thread count; formulas that need the whole
    /// series are refused with a message; a damaged file is an error and writes nothing.
    #[test]
    fn streamed_inputs_give_the_whole_images_result() {
        let scratch = ScratchDir::new("streamed-inputs");
        let (nii, gz) = series(&scratch.0);
        let whole = Image::load(&nii).expect("loaded");
        let streamed = Image::open_streamed(&gz).expect("opened");
        assert!(streamed.is_streamed() && streamed.raw().bytes.is_empty());
        assert!(!Image::open_streamed(&nii).expect("opened").is_streamed());
        let specs = [InputSpec::of("b", &whole)];
        for (formula, passes) in [
            ("np.mean(b, axis=-1)", 1),
            ("np.sum(b[..., 2::3], axis=-1) * 0.5 + 1", 1),
            ("np.mean(b, axis=-1) / np.std(b, axis=-1)", 2),
            ("np.var(b.astype(np.float32), axis=-1, ddof=1)", 2),
        ] {
            let f = Formula::compile(formula, &specs).expect(formula);
            assert_eq!(
                f.stream_passes(&[("b", &streamed)], "b").expect(formula),
                Some(passes),
                "{formula}"
            );
            for threads in [1, 2] {
                let options = EvalOptions {
                    threads: Some(threads),
                    ..EvalOptions::default()
                };
                let want = f
                    .eval(&[("b", &whole)], &options, &NoProgress)
                    .expect(formula);
                let got = f
                    .eval(&[("b", &streamed)], &options, &NoProgress)
                    .expect(formula);
                assert!(got.data == want.data, "{formula}, {threads} threads");
                let out = scratch.0.join("out.nii");
                f.eval_to_file(&[("b", &streamed)], &out, &options, &NoProgress)
                    .expect(formula);
                let written = Image::load(&out).expect("written");
                assert!(written.raw().bytes == want.data.as_slice(), "{formula}");
            }
        }

        let f = Formula::compile("b * 2", &specs).expect("compiles");
        assert_eq!(f.stream_passes(&[("b", &streamed)], "b").expect("ok"), None);
        let Err(err) = f.eval(&[("b", &streamed)], &EvalOptions::default(), &NoProgress) else {
            panic!("a formula reading the whole series must refuse a streamed input");
        };
        assert!(err.to_string().contains("Image::load"), "{err}");

        // Cut the gzip stream in the middle of the data: the header still opens.
        let bytes = std::fs::read(&gz).expect("read");
        let cut = scratch.0.join("cut.nii.gz");
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).expect("written");
        let damaged = Image::open_streamed(&cut).expect("the header opens");
        let f = Formula::compile("np.mean(b, axis=-1)", &specs).expect("compiles");
        let out = scratch.0.join("never.nii");
        let err = f
            .eval_to_file(
                &[("b", &damaged)],
                &out,
                &EvalOptions::default(),
                &NoProgress,
            )
            .expect_err("truncated");
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(!out.exists());
    }

    /// Every chunk `stream_data` hands over holds the next bytes of the data, whatever the
    /// chunk size, and the consumer's error stops the stream.
    #[test]
    fn stream_data_hands_over_the_data_in_order() {
        let scratch = ScratchDir::new("stream-chunks");
        let (nii, gz) = series(&scratch.0);
        let whole = Image::load(&nii).expect("loaded");
        let streamed = Image::open_streamed(&gz).expect("opened");
        for chunk in [1, 7, 240, 4096, 1 << 20] {
            let mut got = Vec::new();
            let mut sizes = Vec::new();
            let res = streamed
                .nifti()
                .stream_data(chunk, &mut |bytes: &[u8]| -> Result<(), ()> {
                    sizes.push(bytes.len());
                    got.extend_from_slice(bytes);
                    Ok(())
                })
                .expect("inflates");
            assert!(res.is_ok());
            assert!(got == whole.raw().bytes, "chunk {chunk}");
            assert!(sizes[..sizes.len() - 1].iter().all(|&s| s == chunk));
        }
        let mut calls = 0;
        let res = streamed
            .nifti()
            .stream_data(100, &mut |_: &[u8]| {
                calls += 1;
                if calls == 3 {
                    Err("stop")
                } else {
                    Ok(())
                }
            })
            .expect("inflates");
        assert_eq!((res, calls), (Err("stop"), 3));
    }
}
