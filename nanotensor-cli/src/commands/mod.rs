//! One module per subcommand.

pub mod attention;
pub mod attention_scaling;
pub mod bandwidth;
pub mod bench_model;
pub mod embed;
pub mod generate;
pub mod info;
pub mod matmul;
mod model_io;
pub mod perplexity;
pub mod quantize;
pub mod search;
pub mod tokenize;
