pub mod exec_env;
pub mod suggest;
