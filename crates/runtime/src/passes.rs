//! The passes of a streamed plan ([`voxcalc_ir::stream::StreamPlan`]): each volume of the
//! streamed image, as it arrives, advances every accumulator of the current pass that reads it.
//!
//! Each accumulator keeps two carries: its kernel reads one and writes the other (blocks of
//! voxels on the thread pool), then they swap. Memory is two carries per accumulator, whatever
//! the number of volumes.

use voxcalc_ir::plan::StageInput;
use voxcalc_ir::stream::StreamPlan;
use voxcalc_ir::{InputBuf, RunError};
use voxcalc_jit::CompiledPlan;

use crate::{run_blocks, stage_block, thread_pool, Blocks, ExecError, Progress, RunOptions};

/// Accumulators of a streamed plan, fed volume by volume.
pub struct Passes<'a> {
    stream: &'a StreamPlan,
    accumulate: &'a CompiledPlan,
    images: Vec<InputBuf<'a>>,
    carries: Vec<Vec<u8>>,
    spare: Vec<Vec<u8>>,
    pool: rayon::ThreadPool,
    blocks: Vec<usize>,
}

impl<'a> Passes<'a> {
    /// Starts the passes of `stream`, whose accumulator kernels are compiled in `accumulate`.
    /// `images` are the plan's images; the streamed one's buffer is not read (it may be empty).
    pub fn new(
        stream: &'a StreamPlan,
        accumulate: &'a CompiledPlan,
        images: &[InputBuf<'a>],
        options: &RunOptions,
    ) -> Result<Passes<'a>, ExecError> {
        if images.len() != stream.n_images
            || accumulate.kernels().len() != stream.accumulators.len()
        {
            return Err(ExecError::Run(RunError(format!(
                "a streamed plan over {} images and {} accumulators got {} images and {} kernels",
                stream.n_images,
                stream.accumulators.len(),
                images.len(),
                accumulate.kernels().len()
            ))));
        }
        let pool = thread_pool(options)?;
        let threads = pool.current_num_threads();
        let carries: Vec<Vec<u8>> = stream
            .accumulators
            .iter()
            .map(|acc| {
                let init = acc.init.to_le_bytes();
                init.repeat(acc.n_voxels as usize)
            })
            .collect();
        let spare = carries.iter().map(|c| vec![0u8; c.len()]).collect();
        let blocks = accumulate
            .kernels()
            .iter()
            .map(|k| stage_block(k, options, threads))
            .collect();
        Ok(Passes {
            stream,
            accumulate,
            images: images.to_vec(),
            carries,
            spare,
            pool,
            blocks,
        })
    }

    /// Advances every accumulator of pass `pass` that reads volume `t` (its bytes: one volume
    /// of the streamed image, as stored). Volumes must come in order, each once per pass.
    pub fn volume(
        &mut self,
        pass: usize,
        t: u64,
        volume: &[u8],
        progress: &dyn Progress,
    ) -> Result<(), ExecError> {
        let stages = &self.accumulate.plan().stages;
        for (k, acc) in self.stream.accumulators.iter().enumerate() {
            if acc.pass != pass || !acc.reads(t) {
                continue;
            }
            let stage = &stages[k];
            let mut inputs = Vec::with_capacity(stage.inputs.len());
            for src in &stage.inputs {
                inputs.push(match *src {
                    StageInput::Image(n) if n == self.stream.image => InputBuf {
                        bytes: volume,
                        base: 0,
                    },
                    StageInput::Image(n) if n >= self.stream.n_images => InputBuf {
                        bytes: self
                            .carries
                            .get(n - self.stream.n_images)
                            .ok_or_else(|| RunError(format!("no carry #{n}")))?,
                        base: 0,
                    },
                    StageInput::Image(n) => self.images[n],
                    StageInput::Table(t) => InputBuf {
                        bytes: &self.accumulate.plan().tables[t],
                        base: 0,
                    },
                    StageInput::Stage(_) => {
                        return Err(ExecError::Run(RunError(
                            "an accumulator cannot read a stage".to_string(),
                        )))
                    }
                });
            }
            let args = voxcalc_ir::RunArgs {
                inputs: &inputs,
                uniforms: &[],
            };
            let kernel = &self.accumulate.kernels()[k];
            let out = &mut self.spare[k];
            let blocks = Blocks {
                first_voxel: 0,
                block: self.blocks[k],
            };
            self.pool
                .install(|| run_blocks(kernel, &args, out, blocks, progress, None))?;
            std::mem::swap(&mut self.carries[k], &mut self.spare[k]);
        }
        Ok(())
    }

    /// The finished carries, in accumulator order: images `n_images..` of the rest plan.
    pub fn finish(self) -> Vec<Vec<u8>> {
        self.carries
    }
}
