//! The marketdb command line.

fn main() {}
