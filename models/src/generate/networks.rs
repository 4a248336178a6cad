//! The generated networks: identity, a small CNN and ResNet-18/50-shaped networks, each
//! with a `batch` `dim_param` and seeded weights scaled so activations stay finite.

use tract_onnx::pb::tensor_proto::DataType as OnnxDataType;
use tract_onnx::pb::ModelProto;

use super::builder::{attr_int, ConvShape, DimSpec, GraphBuilder};

use DimSpec::{Batch, Fixed};

/// Features of the identity model's input and output.
pub(crate) const IDENTITY_FEATURES: i64 = 16;
/// Classes of the CNN and ResNet heads.
pub(crate) const RESNET_CLASSES: i64 = 1000;
/// Classes of the small CNN's head.
pub(crate) const SMALL_CNN_CLASSES: i64 = 10;
/// The small CNN's input side (3 x 64 x 64 images).
pub(crate) const SMALL_CNN_SIDE: i64 = 64;
/// The ResNets' input side (3 x 224 x 224 images).
pub(crate) const RESNET_SIDE: i64 = 224;
/// Gain of the last BatchNorm of each residual branch: the branch adds about
/// `gain^2` of the trunk's variance, so 16 blocks grow activations by well under 2x.
const RESIDUAL_BRANCH_GAIN: f32 = 0.2;

/// `output = input`, FP32 `[batch, 16]`.
pub(crate) fn identity(seed: u64) -> ModelProto {
    let mut g = GraphBuilder::new("identity", seed);
    let x = g.input(
        "input",
        OnnxDataType::Float,
        &[Batch, Fixed(IDENTITY_FEATURES)],
    );
    let y = g.node("Identity", &[&x], vec![]);
    g.output(
        &y,
        "output",
        OnnxDataType::Float,
        &[Batch, Fixed(IDENTITY_FEATURES)],
    );
    g.finish()
}

/// FP32 `[batch, 3, 64, 64]` -> three conv3x3 + ReLU + maxpool2 stages (32, 64, 128
/// channels) -> flatten -> Gemm -> `[batch, 10]`. About 80 MFLOP per image.
pub(crate) fn small_cnn(seed: u64) -> ModelProto {
    let mut g = GraphBuilder::new("small_cnn", seed);
    let mut x = g.input(
        "input",
        OnnxDataType::Float,
        &[
            Batch,
            Fixed(3),
            Fixed(SMALL_CNN_SIDE),
            Fixed(SMALL_CNN_SIDE),
        ],
    );
    let mut channels = 3;
    for out in [32, 64, 128] {
        x = g.conv(
            &x,
            ConvShape {
                cin: channels,
                cout: out,
                kernel: 3,
                stride: 1,
            },
            true,
        );
        x = g.relu(&x);
        x = g.max_pool(&x, 2, 2, 0);
        channels = out;
    }
    let side = SMALL_CNN_SIDE / 8;
    x = g.node("Flatten", &[&x], vec![attr_int("axis", 1)]);
    x = g.dense(&x, channels * side * side, SMALL_CNN_CLASSES);
    g.output(
        &x,
        "output",
        OnnxDataType::Float,
        &[Batch, Fixed(SMALL_CNN_CLASSES)],
    );
    g.finish()
}

/// Conv (no bias) + BatchNorm, optionally + ReLU.
fn conv_bn(g: &mut GraphBuilder, x: &str, shape: ConvShape, relu: bool, gain: f32) -> String {
    let y = g.conv(x, shape, false);
    let y = g.batch_norm(&y, shape.cout, gain);
    if relu {
        g.relu(&y)
    } else {
        y
    }
}

/// The shortcut of a block: the input itself, or a strided 1x1 conv + BN when the
/// shape changes.
fn shortcut(g: &mut GraphBuilder, x: &str, cin: i64, cout: i64, stride: i64) -> String {
    if cin == cout && stride == 1 {
        x.to_owned()
    } else {
        conv_bn(
            g,
            x,
            ConvShape {
                cin,
                cout,
                kernel: 1,
                stride,
            },
            false,
            1.0,
        )
    }
}

/// ResNet basic block: conv3x3 - conv3x3, plus the shortcut, then ReLU.
fn basic_block(g: &mut GraphBuilder, x: &str, cin: i64, cout: i64, stride: i64) -> String {
    let y = conv_bn(
        g,
        x,
        ConvShape {
            cin,
            cout,
            kernel: 3,
            stride,
        },
        true,
        1.0,
    );
    let y = conv_bn(
        g,
        &y,
        ConvShape {
            cin: cout,
            cout,
            kernel: 3,
            stride: 1,
        },
        false,
        RESIDUAL_BRANCH_GAIN,
    );
    let s = shortcut(g, x, cin, cout, stride);
    let sum = g.node("Add", &[&y, &s], vec![]);
    g.relu(&sum)
}

/// ResNet bottleneck block (v1.5: stride on the 3x3): 1x1 - 3x3 - 1x1 (4x wider), plus
/// the shortcut, then ReLU.
fn bottleneck_block(g: &mut GraphBuilder, x: &str, cin: i64, width: i64, stride: i64) -> String {
    let cout = width * 4;
    let y = conv_bn(
        g,
        x,
        ConvShape {
            cin,
            cout: width,
            kernel: 1,
            stride: 1,
        },
        true,
        1.0,
    );
    let y = conv_bn(
        g,
        &y,
        ConvShape {
            cin: width,
            cout: width,
            kernel: 3,
            stride,
        },
        true,
        1.0,
    );
    let y = conv_bn(
        g,
        &y,
        ConvShape {
            cin: width,
            cout,
            kernel: 1,
            stride: 1,
        },
        false,
        RESIDUAL_BRANCH_GAIN,
    );
    let s = shortcut(g, x, cin, cout, stride);
    let sum = g.node("Add", &[&y, &s], vec![]);
    g.relu(&sum)
}

/// A ResNet: stem (conv7x7/2 + BN + ReLU + maxpool3x3/2), four stages of `blocks`
/// (widths 64, 128, 256, 512; stride 2 from the second stage on), global average pool,
/// flatten, Gemm to 1000 classes. FP32 `[batch, 3, 224, 224]` -> `[batch, 1000]`.
fn resnet(name: &str, seed: u64, blocks: [usize; 4], bottleneck: bool) -> ModelProto {
    let mut g = GraphBuilder::new(name, seed);
    let x = g.input(
        "input",
        OnnxDataType::Float,
        &[Batch, Fixed(3), Fixed(RESNET_SIDE), Fixed(RESNET_SIDE)],
    );
    let x = conv_bn(
        &mut g,
        &x,
        ConvShape {
            cin: 3,
            cout: 64,
            kernel: 7,
            stride: 2,
        },
        true,
        1.0,
    );
    let mut x = g.max_pool(&x, 3, 2, 1);
    let mut channels = 64;
    for (stage, (&count, width)) in blocks.iter().zip([64, 128, 256, 512]).enumerate() {
        for block in 0..count {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            if bottleneck {
                x = bottleneck_block(&mut g, &x, channels, width, stride);
                channels = width * 4;
            } else {
                x = basic_block(&mut g, &x, channels, width, stride);
                channels = width;
            }
        }
    }
    let x = g.node("GlobalAveragePool", &[&x], vec![]);
    let x = g.node("Flatten", &[&x], vec![attr_int("axis", 1)]);
    let x = g.dense(&x, channels, RESNET_CLASSES);
    g.output(
        &x,
        "output",
        OnnxDataType::Float,
        &[Batch, Fixed(RESNET_CLASSES)],
    );
    g.finish()
}

/// ResNet-18-shaped: basic blocks [2, 2, 2, 2], about 11.7 M parameters.
pub(crate) fn resnet18(seed: u64) -> ModelProto {
    resnet("resnet18", seed, [2, 2, 2, 2], false)
}

/// ResNet-50-shaped: bottleneck blocks [3, 4, 6, 3], about 25.6 M parameters.
pub(crate) fn resnet50(seed: u64) -> ModelProto {
    resnet("resnet50", seed, [3, 4, 6, 3], true)
}
