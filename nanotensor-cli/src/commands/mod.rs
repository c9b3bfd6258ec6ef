//! One module per subcommand.

pub mod attention;
pub mod attention_scaling;
pub mod matmul;
