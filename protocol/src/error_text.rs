//! The text of an error as Petrel reports it (device `last_error`, event
//! messages, CLI output): the error and each of its sources that adds
//! something, `: `-separated. Connection errors (reqwest, hyper, bollard)
//! hide the real cause — "connection refused", a missing socket — in their
//! sources, and often repeat their own text there.

use std::error::Error;

/// `e` then each source whose text is not already said.
pub fn error_text(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct Wrapped(&'static str, Option<Box<Wrapped>>);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|w| w as &(dyn Error + 'static))
        }
    }

    #[test]
    fn each_cause_is_said_once_in_order() {
        let refused = Wrapped("connection refused", None);
        let connect = Wrapped(
            "tcp connect error: connection refused",
            Some(Box::new(refused)),
        );
        let top = Wrapped("error sending request", Some(Box::new(connect)));
        assert_eq!(
            error_text(&top),
            "error sending request: tcp connect error: connection refused"
        );
        assert_eq!(error_text(&Wrapped("alone", None)), "alone");
    }
}
