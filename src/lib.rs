//! marketdb facade.
