//! CUDA execution plans built from the generated models, checked on the CPU (no driver):
//! step kinds and fusion, that every step reads only bytes written before it and not
//! overwritten since, arena reuse, weight totals, and weight placement in pages.

use clockwork_gpu::cuda_plan::{
    place_weights, ArenaSpan, ElementwiseOp, Plan, PlanError, PoolKind, Step, ALIGN,
};
use clockwork_models::{ImportLimits, ImportedModel, ModelKind, Precision};

mod common;

use common::{count, import, PAGE};

fn fused_convs(plan: &Plan) -> usize {
    plan.steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                Step::Conv {
                    bias: Some(_),
                    relu: true,
                    ..
                }
            )
        })
        .count()
}

/// Walk the steps as a device would: the input is written first; each step's inputs must
/// be spans written earlier and not overwritten since; each write clobbers whatever
/// overlaps it. The output must still be intact at the end.
fn check_dataflow(plan: &Plan) {
    let mut valid: Vec<ArenaSpan> = vec![plan.input];
    for (i, step) in plan.steps.iter().enumerate() {
        for input in step.inputs() {
            assert!(
                valid.contains(&input),
                "step {i} ({}) reads {input:?}, not written or overwritten",
                step.kind()
            );
        }
        let out = step.output();
        assert_eq!(out.offset % ALIGN, 0, "step {i} output is aligned");
        assert!(
            out.offset + out.bytes <= plan.arena_bytes,
            "step {i} output in the arena"
        );
        if step.is_view() {
            assert_eq!(step.inputs(), vec![out], "a view keeps its bytes");
            continue;
        }
        assert!(
            step.inputs().iter().all(|s| !s.overlaps(&out)),
            "step {i} ({}) writes over its own input",
            step.kind()
        );
        valid.retain(|s| !s.overlaps(&out));
        valid.push(out);
    }
    assert!(
        valid.contains(&plan.output),
        "the output survives to the end"
    );
}

fn check_common(plan: &Plan) {
    check_dataflow(plan);
    assert!(
        plan.arena_bytes <= plan.activation_bytes,
        "reuse never grows the arena"
    );
    assert!(plan.arena_bytes >= plan.input.bytes);
}

#[test]
fn small_cnn_plan_fuses_conv_bias_relu() {
    let model = import(ModelKind::SmallCnn);
    for batch in [1, 16] {
        let plan = Plan::build(&model, batch, Precision::Fp32).expect("small CNN plans");
        let kinds: Vec<&str> = plan.steps.iter().map(Step::kind).collect();
        assert_eq!(
            kinds,
            [
                "input_to_nhwc",
                "conv",
                "pool",
                "conv",
                "pool",
                "conv",
                "pool",
                "gemm"
            ],
            "batch {batch}"
        );
        assert_eq!(fused_convs(&plan), 3);
        assert!(plan.steps.iter().all(|s| !matches!(
            s,
            Step::Pool {
                kind: PoolKind::Average,
                ..
            }
        )));
        let Some(Step::Gemm {
            m,
            n,
            k,
            epilogue,
            weight_transposed,
            ..
        }) = plan.steps.last()
        else {
            panic!("the head is a GEMM");
        };
        assert_eq!((*m, *n, *k), (batch, 10, 128 * 8 * 8));
        assert!(epilogue.bias.is_some() && !epilogue.relu && *weight_transposed);
        check_common(&plan);
        // Parameters: three conv3x3 with bias, one dense with bias; all fp32.
        let params =
            (32 * 3 * 9 + 32) + (64 * 32 * 9 + 64) + (128 * 64 * 9 + 128) + (10 * 8192 + 10);
        assert_eq!(plan.weight_bytes(), params * 4);
        assert_eq!(plan.weight_bytes(), model.metadata().weight_bytes);
        assert_eq!(plan.input.bytes, batch as u64 * 3 * 64 * 64 * 4);
        assert_eq!(plan.output.bytes, batch as u64 * 10 * 4);
    }
}

/// Conv (+ folded BN) parameters of a ResNet: each conv's filter plus one bias per
/// output channel, then the dense head.
fn resnet_params(blocks: [usize; 4], bottleneck: bool) -> u64 {
    let conv = |cin: u64, cout: u64, k: u64| cout * cin * k * k + cout;
    let mut total = conv(3, 64, 7);
    let mut ch = 64;
    for (stage, (&count, width)) in blocks.iter().zip([64u64, 128, 256, 512]).enumerate() {
        for block in 0..count {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let cout = if bottleneck { width * 4 } else { width };
            if bottleneck {
                total += conv(ch, width, 1) + conv(width, width, 3) + conv(width, cout, 1);
            } else {
                total += conv(ch, width, 3) + conv(width, width, 3);
            }
            if ch != cout || stride != 1 {
                total += conv(ch, cout, 1);
            }
            ch = cout;
        }
    }
    total + ch * 1000 + 1000
}

fn check_resnet(kind: ModelKind, blocks: [usize; 4], bottleneck: bool) {
    let model = import(kind);
    // Stem, the branch convs, and a shortcut conv where a block changes shape (the
    // first block of each stage but ResNet-18's first, which keeps 64 channels).
    let shortcuts = if bottleneck { 4 } else { 3 };
    let convs: usize =
        blocks.iter().sum::<usize>() * if bottleneck { 3 } else { 2 } + 1 + shortcuts;
    for batch in [1, 16] {
        let plan = Plan::build(&model, batch, Precision::Fp32).expect("ResNet plans");
        assert_eq!(count(&plan, "conv"), convs, "{kind} b{batch}: convs");
        assert_eq!(count(&plan, "gemm"), 1);
        assert_eq!(
            count(&plan, "pool"),
            2,
            "stem max pool and global average pool"
        );
        assert_eq!(
            count(&plan, "downsample"),
            0,
            "strides folded into 1x1 convs"
        );
        let residuals = blocks.iter().sum::<usize>();
        let add_relu = plan
            .steps
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    Step::Elementwise {
                        op: ElementwiseOp::AddRelu,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(add_relu, residuals, "one residual add + ReLU per block");
        // Fused conv+bias+ReLU: the stem and every conv of a branch but the last.
        let fused = 1 + residuals * if bottleneck { 2 } else { 1 };
        assert_eq!(
            fused_convs(&plan),
            fused,
            "{kind} b{batch}: fused conv+bias+relu"
        );
        assert_eq!(
            plan.steps.len(),
            1 + convs + 2 + residuals + 1 + count(&plan, "view")
        );
        check_common(&plan);
        assert!(
            plan.arena_bytes < plan.activation_bytes / 2,
            "reuse at least halves the arena"
        );
        assert_eq!(plan.weight_bytes(), resnet_params(blocks, bottleneck) * 4);
        let half = Plan::build(&model, batch, Precision::Fp16).expect("fp16 plans");
        assert_eq!(half.weight_bytes() * 2, plan.weight_bytes());
        assert!(half.arena_bytes <= plan.arena_bytes);
    }
}

#[test]
fn resnet18_plan() {
    check_resnet(ModelKind::Resnet18, [2, 2, 2, 2], false);
}

#[test]
fn resnet50_plan_and_pages() {
    check_resnet(ModelKind::Resnet50, [3, 4, 6, 3], true);
    let plan = Plan::build(&import(ModelKind::Resnet50), 1, Precision::Fp32).expect("plans");
    let placement = plan.place_weights(PAGE).expect("places");
    let bytes = plan.weight_bytes();
    let min_pages = bytes.div_ceil(PAGE);
    assert!(
        u64::from(placement.pages) >= min_pages && u64::from(placement.pages) <= min_pages + 1,
        "{} pages for {bytes} bytes",
        placement.pages
    );
    check_placement(&placement.slots, PAGE);
}

fn check_placement(slots: &[clockwork_gpu::cuda_plan::WeightSlot], page: u64) {
    let mut spans: Vec<(u64, u64)> = slots
        .iter()
        .map(|s| {
            assert_eq!(s.offset % ALIGN, 0, "aligned");
            assert!(s.offset < page);
            if s.bytes > page - s.offset {
                assert_eq!(s.offset, 0, "a tensor spilling over a page starts one");
            }
            (s.linear_start(page), s.bytes)
        })
        .collect();
    spans.sort_unstable();
    for w in spans.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "no overlap: {w:?}");
    }
}

#[test]
fn identity_plan_has_no_steps() {
    let plan = Plan::build(&import(ModelKind::Identity), 4, Precision::Fp32).expect("plans");
    assert!(plan.steps.iter().all(Step::is_view));
    assert_eq!(plan.input, plan.output);
    assert_eq!(plan.input.bytes, 4 * 16 * 4);
    assert_eq!(plan.weight_bytes(), 0);
}

#[test]
fn zero_batch_is_refused() {
    let err = Plan::build(&import(ModelKind::SmallCnn), 0, Precision::Fp32).unwrap_err();
    assert_eq!(err, PlanError::ZeroBatch);
}

#[test]
fn placement_of_a_tensor_bigger_than_a_page() {
    let page = 4096;
    let placement = place_weights(&[100, 3 * page + 1, 10, page], page).expect("places");
    let s = &placement.slots;
    assert_eq!((s[0].page, s[0].offset), (0, 0));
    assert_eq!(
        (s[1].page, s[1].offset),
        (1, 0),
        "the large tensor starts a fresh page"
    );
    assert_eq!(s[2].page, 4, "after the 4 pages of the large tensor");
    assert_eq!(s[2].offset, ALIGN, "aligned after the spill");
    assert_eq!(
        (s[3].page, s[3].offset),
        (5, 0),
        "a page-sized tensor does not fit behind another"
    );
    assert_eq!(placement.pages, 6);
    check_placement(s, page);
    assert!(
        place_weights(&[1], 100).is_err(),
        "page size must be a multiple of the alignment"
    );
    assert!(place_weights(&[1], 0).is_err());
}

#[test]
fn an_unsupported_op_is_refused_with_its_node() {
    use prost::Message;
    let mut proto = ModelKind::SmallCnn.model_proto(7);
    let graph = proto.graph.as_mut().expect("a graph");
    let relu = graph
        .node
        .iter_mut()
        .find(|n| n.op_type == "Relu")
        .expect("the small CNN has a ReLU");
    relu.op_type = "Sigmoid".into();
    let node = relu.name.clone();
    let model = ImportedModel::import_bytes(
        "sigmoid_cnn",
        &proto.encode_to_vec(),
        &ImportLimits::default(),
    )
    .expect("tract imports it");
    let err = Plan::build(&model, 1, Precision::Fp32).expect_err("no step kind for a sigmoid");
    let PlanError::Unsupported { node: at, op, .. } = &err else {
        panic!("refused as unsupported: {err:?}");
    };
    assert!(op.contains("Sigmoid"), "names the op: {err}");
    assert!(at.starts_with(&node), "names the node `{node}`: {err}");
    assert!(err.to_string().contains("not supported by the CUDA plan"));
}

/// Run the plan with the CPU reference interpreter and compare with tract's CPU run.
fn compare_with_tract(kind: ModelKind, batch: usize) {
    use clockwork_gpu::cuda_plan::reference;
    let model = import(kind);
    let plan = Plan::build(&model, batch, Precision::Fp32).expect("plans");
    let per_request = plan.input.bytes as usize / 4 / batch;
    let input: Vec<f32> = (0..per_request * batch)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let got = reference::run(&plan, &input).expect("the interpreter runs the plan");
    let mut runner = model.plan(&[batch]).expect("tract plans");
    let in_bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out_bytes = vec![0u8; plan.output.bytes as usize];
    runner
        .run(batch, &[&in_bytes], &mut [&mut out_bytes])
        .expect("tract runs");
    let want: Vec<f32> = out_bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 1e-3, "tract's output is not all zeros");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * scale,
            "{kind} b{batch}: output {i}: plan {g}, tract {w} (max |out| {scale})"
        );
    }
}

#[test]
fn small_cnn_plan_computes_what_tract_computes() {
    compare_with_tract(ModelKind::SmallCnn, 2);
}

#[test]
fn resnet18_plan_computes_what_tract_computes() {
    compare_with_tract(ModelKind::Resnet18, 1);
}
