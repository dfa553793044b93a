//! Optimisation passes: constant folding, common-subexpression elimination (scoped by region,
//! reductions included) and dead-code elimination, done in one rebuild of the arena.

use std::collections::HashMap;

use crate::interp;
use crate::kernel::{BinaryOp, InstKind, Kernel, LoopId, Reduce, UnaryOp, ValueId};

/// Which passes [`optimize`] runs (dead code is always removed).
#[derive(Clone, Copy, Debug)]
pub struct OptOptions {
    /// Evaluate operations whose operands are all constants.
    pub fold_constants: bool,
    /// Share identical computations (including whole reductions, e.g. the mean inside a std
    /// and a mean of the same data).
    pub cse: bool,
}

impl Default for OptOptions {
    fn default() -> OptOptions {
        OptOptions {
            fold_constants: true,
            cse: true,
        }
    }
}

/// Returns an optimised copy of `kernel` (same semantics, bit for bit: folding uses the
/// interpreter's own scalar functions), its values renumbered densely.
pub fn optimize(kernel: &Kernel, options: OptOptions) -> Kernel {
    let once = rebuild(kernel, options);
    // A second pass without folding or CSE drops what the first made dead and renumbers.
    let twice = rebuild(
        &once,
        OptOptions {
            fold_constants: false,
            cse: false,
        },
    );
    prune(&twice)
}

/// Drops views no load reads and loops no reduction runs, renumbering the rest in order.
pub fn prune(kernel: &Kernel) -> Kernel {
    let mut k = kernel.clone();
    let mut view_used = vec![false; k.views.len()];
    let mut loop_used = vec![false; k.loops.len()];
    for inst in &k.insts {
        match &inst.kind {
            InstKind::Load(v) => view_used[v.index()] = true,
            InstKind::Reduce(r) => {
                for l in &r.loops {
                    loop_used[l.index()] = true;
                }
            }
            _ => {}
        }
    }
    let renumber = |used: &[bool]| -> Vec<Option<u32>> {
        let mut next = 0u32;
        used.iter()
            .map(|&u| {
                u.then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect()
    };
    let view_map = renumber(&view_used);
    let loop_map = renumber(&loop_used);
    let new_loop = |l: LoopId| LoopId(loop_map[l.index()].expect("a used loop"));
    k.views = k
        .views
        .iter()
        .enumerate()
        .filter(|(i, _)| view_used[*i])
        .map(|(_, v)| {
            let mut v = v.clone();
            v.loop_strides = v
                .loop_strides
                .iter()
                .filter(|(l, _)| loop_used[l.index()])
                .map(|&(l, s)| (new_loop(l), s))
                .collect();
            v
        })
        .collect();
    k.loops = k
        .loops
        .iter()
        .enumerate()
        .filter(|(i, _)| loop_used[*i])
        .map(|(_, l)| l.clone())
        .collect();
    for inst in &mut k.insts {
        match &mut inst.kind {
            InstKind::Load(v) => *v = crate::kernel::ViewId(view_map[v.index()].expect("used")),
            InstKind::Reduce(r) => {
                for l in &mut r.loops {
                    *l = new_loop(*l);
                }
            }
            _ => {}
        }
    }
    k
}

fn rebuild(kernel: &Kernel, options: OptOptions) -> Kernel {
    let live = liveness(kernel);
    let mut rb = Rebuild {
        old: kernel,
        options,
        live,
        new_insts: Vec::new(),
        map: vec![None; kernel.insts.len()],
        scopes: vec![HashMap::new()],
        classes: HashMap::new(),
        class: Vec::new(),
        loop_canon: HashMap::new(),
    };
    let body = rb.region(&kernel.body);
    let output = rb.map[kernel.output.index()].expect("the output is live");
    Kernel {
        domain: kernel.domain.clone(),
        inputs: kernel.inputs.clone(),
        views: kernel.views.clone(),
        loops: kernel.loops.clone(),
        uniforms: kernel.uniforms.clone(),
        insts: rb.new_insts,
        body,
        output,
    }
}

/// Marks every value the output depends on.
fn liveness(kernel: &Kernel) -> Vec<bool> {
    let mut live = vec![false; kernel.insts.len()];
    let mut stack = vec![kernel.output];
    while let Some(v) = stack.pop() {
        if std::mem::replace(&mut live[v.index()], true) {
            continue;
        }
        stack.extend(operands(&kernel.inst(v).kind));
    }
    live
}

/// The values an instruction reads directly (a reduction reads its element and mask).
pub fn operands(kind: &InstKind) -> Vec<ValueId> {
    match kind {
        InstKind::Const(_) | InstKind::Uniform(_) | InstKind::Load(_) => vec![],
        InstKind::Cast(a) | InstKind::Unary(_, a) => vec![*a],
        InstKind::Binary(_, a, b) => vec![*a, *b],
        InstKind::Select(c, a, b) => vec![*c, *a, *b],
        InstKind::Reduce(r) => {
            let mut v = vec![r.elem];
            v.extend(r.mask);
            v
        }
    }
}

struct Rebuild<'k> {
    old: &'k Kernel,
    options: OptOptions,
    live: Vec<bool>,
    new_insts: Vec<crate::kernel::Inst>,
    map: Vec<Option<ValueId>>,
    /// Values available in each enclosing region, by value class.
    scopes: Vec<HashMap<u32, ValueId>>,
    /// Value classes by structural key (never popped: equal structure means equal value).
    classes: HashMap<Key, u32>,
    /// The class of each new value.
    class: Vec<u32>,
    /// A structural name for each reduction loop (nesting depth, position, length), so that
    /// identical reductions over different loop ids compare equal.
    loop_canon: HashMap<LoopId, String>,
}

impl Rebuild<'_> {
    fn region(&mut self, region: &[ValueId]) -> Vec<ValueId> {
        let mut out = Vec::new();
        for &v in region {
            if !self.live[v.index()] {
                continue;
            }
            if let Some(new) = self.value(v) {
                out.push(new);
            }
        }
        out
    }

    fn mapped(&self, v: ValueId) -> ValueId {
        self.map[v.index()].expect("operands are rebuilt before their uses")
    }

    /// Rebuilds one value; returns its id when it adds a new instruction to the region.
    fn value(&mut self, v: ValueId) -> Option<ValueId> {
        let inst = self.old.inst(v);
        let kind = match &inst.kind {
            InstKind::Cast(a) => InstKind::Cast(self.mapped(*a)),
            InstKind::Unary(op, a) => InstKind::Unary(*op, self.mapped(*a)),
            InstKind::Binary(op, a, b) => {
                let (mut a, mut b) = (self.mapped(*a), self.mapped(*b));
                if op.is_commutative() && b < a {
                    std::mem::swap(&mut a, &mut b);
                }
                InstKind::Binary(*op, a, b)
            }
            InstKind::Select(c, a, b) => {
                InstKind::Select(self.mapped(*c), self.mapped(*a), self.mapped(*b))
            }
            InstKind::Reduce(r) => {
                self.scopes.push(HashMap::new());
                let depth = self.scopes.len();
                for (pos, l) in r.loops.iter().enumerate() {
                    let len = self.old.loops[l.index()].len;
                    self.loop_canon.insert(*l, format!("L{depth}.{pos}:{len}"));
                }
                let body = self.region(&r.body);
                self.scopes.pop();
                InstKind::Reduce(Box::new(Reduce {
                    op: r.op,
                    loops: r.loops.clone(),
                    body,
                    elem: self.mapped(r.elem),
                    mask: r.mask.map(|m| self.mapped(m)),
                }))
            }
            other => other.clone(),
        };
        let kind = if self.options.fold_constants {
            self.fold(&kind, inst.dtype).unwrap_or(kind)
        } else {
            kind
        };
        let key = self.key(inst.dtype, &kind);
        let n_classes = self.classes.len() as u32;
        let class = *self.classes.entry(key).or_insert(n_classes);
        if self.options.cse {
            if let Some(&existing) = self.scopes.iter().rev().find_map(|s| s.get(&class)) {
                self.map[v.index()] = Some(existing);
                return None;
            }
        }
        let new = ValueId(self.new_insts.len() as u32);
        self.new_insts.push(crate::kernel::Inst {
            dtype: inst.dtype,
            kind,
        });
        self.class.push(class);
        self.map[v.index()] = Some(new);
        self.scopes
            .last_mut()
            .expect("the top-level scope always exists")
            .insert(class, new);
        Some(new)
    }

    /// Evaluates an operation on constants.
    fn fold(&self, kind: &InstKind, dtype: voxcalc_types::DType) -> Option<InstKind> {
        let konst = |v: &ValueId| match &self.new_insts[v.index()].kind {
            InstKind::Const(s) => Some(*s),
            _ => None,
        };
        let value = match kind {
            InstKind::Cast(a) => konst(a)?.cast(dtype),
            InstKind::Unary(op, a) => interp::unary(*op, konst(a)?),
            InstKind::Binary(op, a, b) => interp::binary(*op, konst(a)?, konst(b)?),
            InstKind::Select(c, a, b) => {
                // A constant condition picks a branch even when the branches vary; that case
                // is a copy, which CSE represents by reusing the branch's key.
                let (a, b) = (konst(a)?, konst(b)?);
                if konst(c)?.truthy() {
                    a
                } else {
                    b
                }
            }
            _ => return None,
        };
        Some(InstKind::Const(value))
    }

    /// A key equal for two instructions exactly when they compute the same value: the operation
    /// and the value classes of its operands (a reduction's body values included, so two
    /// identical reductions in sibling regions share one class).
    fn key(&self, dtype: voxcalc_types::DType, kind: &InstKind) -> Key {
        let class = |v: &ValueId| self.class[v.index()];
        let canon = |l: &LoopId| {
            self.loop_canon
                .get(l)
                .cloned()
                .unwrap_or_else(|| l.to_string())
        };
        match kind {
            InstKind::Reduce(r) => {
                let body: Vec<u32> = r.body.iter().map(class).collect();
                let loops: Vec<String> = r.loops.iter().map(canon).collect();
                Key::Reduce(format!(
                    "{dtype}:reduce {:?} {loops:?} {body:?} elem={} mask={:?}",
                    r.op,
                    class(&r.elem),
                    r.mask.as_ref().map(class),
                ))
            }
            InstKind::Const(s) => Key::Const(dtype, s.to_bits()),
            InstKind::Uniform(n) => Key::Uniform(dtype, *n),
            InstKind::Load(view) => {
                let v = &self.old.views[view.index()];
                Key::Load {
                    dtype,
                    input: v.input.index(),
                    offset: v.offset,
                    domain_strides: v.domain_strides.clone(),
                    loops: v
                        .loop_strides
                        .iter()
                        .map(|(l, st)| (canon(l), *st))
                        .collect(),
                }
            }
            InstKind::Cast(a) => Key::Cast(dtype, class(a)),
            InstKind::Unary(op, a) => Key::Unary(dtype, *op, class(a)),
            InstKind::Binary(op, a, b) => Key::Binary(dtype, *op, class(a), class(b)),
            InstKind::Select(c, a, b) => Key::Select(dtype, class(c), class(a), class(b)),
        }
    }
}

/// What makes two instructions compute the same value (see `Rebuild::key`): the operation, the
/// dtype and the value classes of the operands; loads by their view's walk (reduction loops by
/// their structural names); reductions by a text of all of it (they are few).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Const(voxcalc_types::DType, u64),
    Uniform(voxcalc_types::DType, u32),
    Load {
        dtype: voxcalc_types::DType,
        input: usize,
        offset: i64,
        domain_strides: Vec<i64>,
        loops: Vec<(String, i64)>,
    },
    Cast(voxcalc_types::DType, u32),
    Unary(voxcalc_types::DType, UnaryOp, u32),
    Binary(voxcalc_types::DType, BinaryOp, u32, u32),
    Select(voxcalc_types::DType, u32, u32, u32),
    Reduce(String),
}

/// Merges domain axes, and loops of each reduction, that walk memory as one longer axis for
/// every view (`stride[k + 1] == stride[k] * len[k]`), and drops axes of length 1. The output
/// order is unchanged (it is dense in domain order). Merging reduction loops changes which runs
/// a [`crate::SumOrder::Pairwise`] sum groups, exactly as numpy's iterator merges contiguous
/// axes before it sums: the planner relies on that; call it only on kernels whose reduction
/// loops belong to one reduction each (as the planner builds them).
pub fn coalesce(kernel: &Kernel) -> Kernel {
    let mut k = kernel.clone();
    // Domain axes.
    let mut axis = 0;
    while axis + 1 < k.domain.len() {
        let len = k.domain[axis] as i64;
        let next_len = k.domain[axis + 1];
        let mergeable = next_len == 1
            || k.views
                .iter()
                .all(|v| v.domain_strides[axis + 1] == v.domain_strides[axis] * len);
        if len == 1 {
            k.domain.remove(axis);
            for v in &mut k.views {
                v.domain_strides.remove(axis);
            }
        } else if mergeable {
            k.domain[axis] *= next_len;
            k.domain.remove(axis + 1);
            for v in &mut k.views {
                v.domain_strides.remove(axis + 1);
            }
        } else {
            axis += 1;
        }
    }
    if k.domain.len() == 1 && k.domain[0] == 1 {
        k.domain.clear();
        for v in &mut k.views {
            v.domain_strides.clear();
        }
    }
    // Reduction loops.
    for i in 0..k.insts.len() {
        let loops = match &k.insts[i].kind {
            InstKind::Reduce(r) => r.loops.clone(),
            _ => continue,
        };
        let mut loops = loops;
        let mut j = 0;
        while j + 1 < loops.len() {
            let (inner, outer) = (loops[j], loops[j + 1]);
            let inner_len = k.loops[inner.index()].len as i64;
            let stride = |v: &crate::kernel::View, l: LoopId| {
                v.loop_strides
                    .iter()
                    .find(|(x, _)| *x == l)
                    .map_or(0, |(_, s)| *s)
            };
            let mergeable = k
                .views
                .iter()
                .all(|v| stride(v, outer) == stride(v, inner) * inner_len);
            if mergeable {
                k.loops[inner.index()].len *= k.loops[outer.index()].len;
                for v in &mut k.views {
                    v.loop_strides.retain(|(x, _)| *x != outer);
                }
                loops.remove(j + 1);
            } else {
                j += 1;
            }
        }
        if let InstKind::Reduce(r) = &mut k.insts[i].kind {
            r.loops = loops;
        }
    }
    k
}
