//! The CUDA executor's pure side, on the generated models (no driver): every step of a
//! real plan becomes the launch it should (cuDNN for convolutions and pooling, cuBLASLt
//! for GEMMs, our kernels for the rest) with arguments inside the arena and in the PTX
//! entries' order; bad steps are refused with the step and the reason; the weights'
//! host image holds each weight, in the plan's precision, at its slot.

use clockwork_gpu::cuda_exec::descriptors::{ConvLaunch, MatmulEpilogue};
use clockwork_gpu::cuda_exec::kernels::{ptx_params, Kernel, KernelArg, Operand, ELEMENTWISE_PTX};
use clockwork_gpu::cuda_exec::weights::{decode, host_image, pack_weights, weight_addresses};
use clockwork_gpu::cuda_exec::{workspace_bytes, ExecError, Launch, Schedule};
use clockwork_gpu::cuda_plan::{reference, ArenaSpan, ElementwiseOp, Plan, Step};
use clockwork_models::{ModelKind, Precision};

mod common;

use common::{count, import, PAGE};

/// Every launch reads and writes inside the arena, its weights exist, and each kernel's
/// arguments have the types of its PTX entry's parameters, in order.
fn check_launches(plan: &Plan, schedule: &Schedule) {
    let eb = clockwork_gpu::cuda_plan::element_bytes(plan.precision);
    let inside = |offset: u64, elements: u64| {
        assert!(
            offset + elements * eb <= plan.arena_bytes,
            "{offset} + {elements} elements"
        );
        assert_eq!(offset % 256, 0);
    };
    for l in &schedule.launches {
        match l {
            Launch::Conv {
                desc,
                weight,
                bias,
                x,
                y,
                ..
            } => {
                inside(*x, desc.x.elements());
                inside(*y, desc.y.elements());
                assert!(*weight < plan.weights.len());
                assert_eq!(bias.is_some(), desc.bias.is_some());
            }
            Launch::Pool { desc, x, y, .. } => {
                inside(*x, desc.x.elements());
                inside(*y, desc.y.elements());
            }
            Launch::Matmul { desc, x, y, .. } => {
                inside(*x, desc.b.rows * desc.b.cols);
                inside(*y, desc.d.rows * desc.d.cols);
            }
            Launch::Kernel { launch, .. } => {
                let entry = launch.kernel.entry(plan.precision);
                let params = ptx_params(ELEMENTWISE_PTX, entry).expect("entry in the PTX");
                let types: Vec<&str> = launch.args.iter().map(KernelArg::ptx_type).collect();
                assert_eq!(params, types, "{entry}");
                for a in &launch.args {
                    match a {
                        KernelArg::Ptr(Operand::Arena(o)) => inside(*o, 0),
                        KernelArg::Ptr(Operand::Weight(w)) => assert!(*w < plan.weights.len()),
                        _ => {}
                    }
                }
            }
        }
    }
}

#[test]
fn small_cnn_becomes_cudnn_cublaslt_and_one_transpose() {
    let model = import(ModelKind::SmallCnn);
    for precision in [Precision::Fp32, Precision::Fp16] {
        let plan = Plan::build(&model, 4, precision).expect("plans");
        let schedule = Schedule::build(&plan).expect("runs on the executor");
        // input_to_nhwc, 3 x (conv + pool), gemm.
        assert_eq!(schedule.counts(), (6, 1, 1));
        let Launch::Kernel { launch, .. } = &schedule.launches[0] else {
            panic!("the input transpose comes first");
        };
        assert_eq!(launch.kernel, Kernel::NchwToNhwc);
        assert_eq!(launch.args[2], KernelArg::U64(4 * 3 * 64 * 64));
        assert_eq!(launch.args[3], KernelArg::U64(3));
        assert_eq!(launch.args[4], KernelArg::U64(64 * 64));
        let convs: Vec<ConvLaunch> = schedule
            .launches
            .iter()
            .filter_map(|l| match l {
                Launch::Conv { desc, .. } => Some(desc.launch),
                _ => None,
            })
            .collect();
        assert_eq!(convs, [ConvLaunch::BiasRelu; 3]);
        let Some(Launch::Matmul { desc, bias, .. }) = schedule.launches.last() else {
            panic!("the head is a matmul");
        };
        assert_eq!(desc.epilogue, MatmulEpilogue::Bias);
        assert!(bias.is_some() && desc.trans_a);
        assert_eq!((desc.d.rows, desc.d.cols), (10, 4));
        check_launches(&plan, &schedule);
    }
}

#[test]
fn resnets_schedule_every_step() {
    for (kind, blocks) in [(ModelKind::Resnet18, 8), (ModelKind::Resnet50, 16)] {
        let model = import(kind);
        let plan = Plan::build(&model, 2, Precision::Fp16).expect("plans");
        let schedule = Schedule::build(&plan).expect("runs on the executor");
        let views = count(&plan, "view");
        assert_eq!(schedule.launches.len(), plan.steps.len() - views, "{kind}");
        let (cudnn, cublaslt, ours) = schedule.counts();
        assert_eq!(cudnn, count(&plan, "conv") + count(&plan, "pool"));
        assert_eq!(cublaslt, 1);
        assert_eq!(
            ours,
            1 + blocks,
            "{kind}: input transpose + one AddRelu per block"
        );
        let add_relu = schedule
            .launches
            .iter()
            .filter(
                |l| matches!(l, Launch::Kernel { launch, .. } if launch.kernel == Kernel::AddRelu),
            )
            .count();
        assert_eq!(add_relu, blocks);
        // The last conv of each branch keeps its bias but has no ReLU of its own.
        let identity = schedule
            .launches
            .iter()
            .filter(|l| matches!(l, Launch::Conv { desc, .. } if desc.launch == ConvLaunch::BiasIdentity))
            .count();
        assert!(
            identity >= blocks,
            "{kind}: {identity} conv+bias without ReLU"
        );
        check_launches(&plan, &schedule);
    }
}

fn small_plan() -> Plan {
    Plan::build(&import(ModelKind::SmallCnn), 2, Precision::Fp32).expect("plans")
}

#[test]
fn unsupported_steps_are_refused_with_the_step_and_reason() {
    // Asymmetric padding: cuDNN pads both sides alike.
    let mut plan = small_plan();
    let Step::Conv { geometry, .. } = &mut plan.steps[1] else {
        panic!("step 1 is a conv")
    };
    geometry.pad = [0, 1];
    let err = Schedule::build(&plan).unwrap_err();
    assert!(
        matches!(&err, ExecError::Unsupported { index: 1, kind: "conv", reason } if reason.contains("asymmetric")),
        "{err}"
    );
    // A ReLU without a bias.
    let mut plan = small_plan();
    let Step::Conv { bias, .. } = &mut plan.steps[1] else {
        panic!()
    };
    *bias = None;
    assert!(Schedule::build(&plan)
        .unwrap_err()
        .to_string()
        .contains("ReLU without a bias"));
    // A filter index past the plan's weights.
    let mut plan = small_plan();
    let Step::Conv { weight, .. } = &mut plan.steps[3] else {
        panic!("step 3 is a conv")
    };
    *weight = 99;
    assert!(matches!(
        Schedule::build(&plan),
        Err(ExecError::Unsupported { index: 3, .. })
    ));
    // A weight whose size does not match what the step reads.
    let mut plan = small_plan();
    let Step::Conv { weight, .. } = &mut plan.steps[3] else {
        panic!()
    };
    *weight = 0; // the first conv's filter: 3 input channels, not 32
    let err = Schedule::build(&plan).unwrap_err().to_string();
    assert!(
        err.contains("step 3 (conv)") && err.contains("bytes"),
        "{err}"
    );
    // An output span shorter than what the step writes.
    let mut plan = small_plan();
    let Step::Pool { output, .. } = &mut plan.steps[2] else {
        panic!("step 2 is a pool")
    };
    output.bytes /= 2;
    let err = Schedule::build(&plan).unwrap_err().to_string();
    assert!(
        err.contains("step 2 (pool)") && err.contains("output span"),
        "{err}"
    );
    // An add with one operand.
    let mut plan = small_plan();
    plan.steps.push(Step::Elementwise {
        op: ElementwiseOp::Add,
        elements: 20,
        inputs: vec![plan.output],
        output: ArenaSpan {
            offset: 0,
            bytes: 80,
        },
    });
    let err = Schedule::build(&plan).unwrap_err().to_string();
    assert!(err.contains("takes 2 inputs"), "{err}");
}

#[test]
fn workspace_is_the_largest_request_aligned() {
    assert_eq!(workspace_bytes([]), 0);
    assert_eq!(workspace_bytes([0, 0]), 0);
    assert_eq!(workspace_bytes([1000, 70_000, 3]), 70_144);
    assert_eq!(workspace_bytes([4 << 20, 256]), 4 << 20);
}

#[test]
fn host_image_holds_each_weight_at_its_slot_in_the_plan_precision() {
    let model = import(ModelKind::SmallCnn);
    for precision in [Precision::Fp32, Precision::Fp16] {
        let plan = Plan::build(&model, 1, precision).expect("plans");
        let placement = plan.place_weights(PAGE).expect("places");
        let image = host_image(&plan, &placement).expect("image");
        assert_eq!(image.len() as u64, u64::from(placement.pages) * PAGE);
        let eb = clockwork_gpu::cuda_plan::element_bytes(precision) as usize;
        for (w, slot) in plan.weights.iter().zip(&placement.slots) {
            let want = reference::device_values(w).expect("values");
            let start = slot.linear_start(PAGE) as usize;
            let mut got = vec![0f32; want.len()];
            decode(&image[start..start + want.len() * eb], precision, &mut got);
            let tol = if precision == Precision::Fp16 {
                1e-3
            } else {
                0.0
            };
            for (g, v) in got.iter().zip(&want) {
                assert!(
                    (g - v).abs() <= tol * v.abs().max(1e-2),
                    "{}: {g} vs {v}",
                    w.name
                );
            }
        }
        // With pages given in order from some cache page, every weight is addressable.
        let pages: Vec<u32> = (0..placement.pages).map(|p| 5 + p).collect();
        let addrs = weight_addresses(&placement, &pages, 1 << 40).expect("addresses");
        assert_eq!(addrs[0], (1 << 40) + 5 * PAGE);
    }
}

/// The CUDA backend refuses a model whose weights, packed in pages in the device layout,
/// need more pages than the profile's `weights_bytes` (the ONNX weight bytes) grant: the
/// generated models must fit, in both precisions.
#[test]
fn generated_models_fit_the_pages_their_profile_grants() {
    for kind in [
        ModelKind::SmallCnn,
        ModelKind::Resnet18,
        ModelKind::Resnet50,
    ] {
        let model = import(kind);
        let granted = model.metadata().weight_bytes.div_ceil(PAGE);
        for precision in [Precision::Fp32, Precision::Fp16] {
            let plan = Plan::build(&model, 1, precision).expect("plans");
            let sizes: Vec<u64> = plan.weights.iter().map(|w| w.bytes).collect();
            let pages = u64::from(pack_weights(&sizes, PAGE).expect("packs").pages);
            println!("{kind} {precision}: {pages} pages, {granted} granted");
            assert!(
                pages <= granted,
                "{kind} {precision}: {pages} pages, {granted} granted"
            );
        }
    }
}
