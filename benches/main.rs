//! Benchmark harness for marketdb: runs the workloads of the quality spec against the raw
//! rusqlite floor and the public API, and writes `target/bench/report.{md,json}`.
//! It measures; it asserts nothing (benchmarks are not tests).

fn main() {}
