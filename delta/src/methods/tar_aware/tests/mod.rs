//! Tests of the tar-aware method as a whole: round trips on synthetic
//! layers ([`round_trip`]) and forged, hostile payloads ([`hostile`]).
//! [`layers`] builds the tars and applies patches.

mod hostile;
mod layers;
mod round_trip;
