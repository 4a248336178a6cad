//! What a run allocates: the runner reuses its input tensors (an identity model's run
//! allocates no tensor at all), and a CNN's run allocates the same each time (tract's
//! intermediate activations), never more.
//!
//! One test in this binary: the allocation counters are process-wide.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use clockwork_models::{ImportLimits, ImportedModel, ModelKind};

/// Counts allocations (and those of at least `LARGE` bytes) while `COUNTING` is set.
struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static LARGE_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static LARGE: AtomicUsize = AtomicUsize::new(usize::MAX);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// atomics and allocate nothing.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            if layout.size() >= LARGE.load(Ordering::Relaxed) {
                LARGE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            }
        }
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation is).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// (allocations, allocations of at least `large` bytes) of each of `runs` runs of
/// `requests` requests on `kind`'s plan for `plan` requests.
fn count_runs(
    kind: ModelKind,
    plan: usize,
    requests: usize,
    runs: usize,
    large: usize,
) -> Vec<(usize, usize)> {
    let model =
        ImportedModel::import_bytes(kind.name(), &kind.onnx_bytes(1), &ImportLimits::default())
            .unwrap();
    let meta = model.metadata();
    let input = vec![0x3fu8; requests * meta.inputs[0].bytes_per_request()];
    let mut output = vec![0u8; requests * meta.outputs[0].bytes_per_request()];
    let mut runner = model.plan(&[plan]).unwrap();
    runner.run(requests, &[&input], &mut [&mut output]).unwrap();
    LARGE.store(large, Ordering::SeqCst);
    (0..runs)
        .map(|_| {
            ALLOCATIONS.store(0, Ordering::SeqCst);
            LARGE_ALLOCATIONS.store(0, Ordering::SeqCst);
            COUNTING.store(true, Ordering::SeqCst);
            runner.run(requests, &[&input], &mut [&mut output]).unwrap();
            COUNTING.store(false, Ordering::SeqCst);
            (
                ALLOCATIONS.load(Ordering::SeqCst),
                LARGE_ALLOCATIONS.load(Ordering::SeqCst),
            )
        })
        .collect()
}

#[test]
fn runs_reuse_inputs_and_allocate_a_steady_amount() {
    // Identity, 3 requests on the batch-4 plan: the input tensor (256 bytes) is reused.
    let identity = count_runs(ModelKind::Identity, 4, 3, 5, 256);
    println!("identity b4 (3 requests): (allocations, of >= 256 bytes) per run {identity:?}");
    assert!(
        identity.iter().all(|&(_, large)| large == 0),
        "{identity:?}"
    );

    // Small CNN at batch 2: no input-sized allocation beyond tract's activations, and
    // the same count every run.
    let input_bytes = 2 * 3 * 64 * 64 * 4;
    let cnn = count_runs(ModelKind::SmallCnn, 2, 2, 5, input_bytes);
    println!("small_cnn b2: (allocations, of >= {input_bytes} bytes) per run {cnn:?}");
    assert!(
        cnn.windows(2).all(|w| w[0] == w[1]),
        "allocations vary between runs: {cnn:?}"
    );
}
