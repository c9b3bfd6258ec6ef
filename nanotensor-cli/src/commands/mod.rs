//! One module per subcommand.

pub mod attention;
pub mod info;
pub mod matmul;
pub mod quantize;
pub mod tokenize;
