//! One module per subcommand.

pub mod attention;
pub mod bench_model;
pub mod generate;
pub mod info;
pub mod attention_scaling;
pub mod matmul;
mod model_io;
pub mod perplexity;
pub mod tokenize;
pub mod quantize;
