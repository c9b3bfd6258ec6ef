//! One module per subcommand.

pub mod attention;
pub mod matmul;
