//! What a served model looks like from outside: its input and output tensors (OIP
//! names, datatypes and shapes with `-1` on the batch axis), per-request byte sizes and
//! the bytes of its weights.

use crate::datatype::DataType;

/// One input or output tensor of a model, per OIP model metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// The tensor's name in the ONNX graph.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Shape with the batch axis first, written `-1` as in OIP metadata; every other
    /// dimension is fixed.
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// Elements of one request's slice (the product of the non-batch dimensions).
    pub fn elements_per_request(&self) -> usize {
        self.shape[1..]
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .product()
    }

    /// Bytes of one request's slice.
    pub fn bytes_per_request(&self) -> usize {
        self.elements_per_request() * self.datatype.size_bytes()
    }

    /// The concrete shape for a batch of `batch_size` requests.
    pub fn batch_shape(&self, batch_size: usize) -> Vec<usize> {
        std::iter::once(batch_size)
            .chain(
                self.shape[1..]
                    .iter()
                    .map(|&d| usize::try_from(d).unwrap_or(0)),
            )
            .collect()
    }
}

/// The metadata of an imported model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelMetadata {
    /// The model's name (its repository directory, or the name given at import).
    pub name: String,
    /// Inputs, in the ONNX graph's order.
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in the ONNX graph's order.
    pub outputs: Vec<TensorSpec>,
    /// Bytes of the model's constant tensors (initializers and `Constant` nodes) as
    /// stored in the file: what a device must hold to run it.
    pub weight_bytes: u64,
}

impl ModelMetadata {
    /// Bytes of one request's inputs, all inputs together.
    pub fn input_bytes_per_request(&self) -> usize {
        self.inputs.iter().map(TensorSpec::bytes_per_request).sum()
    }

    /// Bytes of one request's outputs, all outputs together.
    pub fn output_bytes_per_request(&self) -> usize {
        self.outputs.iter().map(TensorSpec::bytes_per_request).sum()
    }

    /// The input called `name`, with its index.
    pub fn input(&self, name: &str) -> Option<(usize, &TensorSpec)> {
        self.inputs.iter().enumerate().find(|(_, t)| t.name == name)
    }

    /// The output called `name`, with its index.
    pub fn output(&self, name: &str) -> Option<(usize, &TensorSpec)> {
        self.outputs
            .iter()
            .enumerate()
            .find(|(_, t)| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_request_sizes() {
        let image = TensorSpec {
            name: "x".into(),
            datatype: DataType::Fp32,
            shape: vec![-1, 3, 4, 5],
        };
        assert_eq!(image.elements_per_request(), 60);
        assert_eq!(image.bytes_per_request(), 240);
        assert_eq!(image.batch_shape(7), vec![7, 3, 4, 5]);
        let ids = TensorSpec {
            name: "ids".into(),
            datatype: DataType::Int64,
            shape: vec![-1, 8],
        };
        let meta = ModelMetadata {
            name: "m".into(),
            inputs: vec![image, ids],
            outputs: vec![TensorSpec {
                name: "y".into(),
                datatype: DataType::Fp16,
                shape: vec![-1, 10],
            }],
            weight_bytes: 0,
        };
        assert_eq!(meta.input_bytes_per_request(), 240 + 64);
        assert_eq!(meta.output_bytes_per_request(), 20);
        assert_eq!(meta.input("ids").map(|(i, _)| i), Some(1));
        assert!(meta.output("nope").is_none());
    }
}
