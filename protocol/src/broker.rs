//! The broker address as operators write it, parsed once for the
//! controller and the agent: `mqtt://host:port`, `mqtts://host:port`
//! (TLS), IPv6 literals in brackets (`mqtt://[::1]:1883`), credentials
//! (`mqtt://user:secret@host`), the port defaulting to 1883 (8883 with
//! TLS), and a bare `host:port` taken as `mqtt://`. Parsed with the `url`
//! crate; anything else (another scheme, a path, a query) is an error
//! that quotes the address.

use std::fmt;

/// A parsed broker address.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// `mqtts://`: connect with TLS.
    pub tls: bool,
    /// Host name or IP address (an IPv6 literal without brackets).
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Why a broker address was refused.
#[derive(Debug, thiserror::Error)]
#[error("broker address {url:?}: {reason}")]
pub struct BrokerUrlError {
    pub url: String,
    pub reason: String,
}

impl BrokerUrl {
    pub fn parse(text: &str) -> Result<BrokerUrl, BrokerUrlError> {
        let fail = |reason: &str| BrokerUrlError {
            url: text.to_string(),
            reason: reason.to_string(),
        };
        let full = if text.contains("://") {
            text.to_string()
        } else {
            format!("mqtt://{text}")
        };
        let url = url::Url::parse(&full).map_err(|e| fail(&e.to_string()))?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(fail(&format!(
                    "scheme {other}:// is not mqtt:// or mqtts://"
                )))
            }
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(fail("a broker address has no path, query or fragment"));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err(fail("no host")),
        };
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        let username = Some(url.username())
            .filter(|u| !u.is_empty())
            .and_then(decode);
        Ok(BrokerUrl {
            tls,
            host,
            port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
            username,
            password: url.password().and_then(decode),
        })
    }
}

impl BrokerUrl {
    /// `host:port`, an IPv6 host in brackets: for logs and messages.
    pub fn address(&self) -> String {
        match self.host.contains(':') {
            true => format!("[{}]:{}", self.host, self.port),
            false => format!("{}:{}", self.host, self.port),
        }
    }
}

/// Never prints the password.
impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerUrl")
            .field("tls", &self.tls)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> (bool, String, u16, Option<String>, Option<String>) {
        let b = BrokerUrl::parse(s).unwrap_or_else(|e| panic!("{e}"));
        (b.tls, b.host, b.port, b.username, b.password)
    }

    #[test]
    fn schemes_ports_ipv6_and_credentials_are_understood() {
        assert_eq!(
            parsed("mqtt://127.0.0.1:1883"),
            (false, "127.0.0.1".into(), 1883, None, None)
        );
        assert_eq!(
            parsed("broker.example:1884"),
            (false, "broker.example".into(), 1884, None, None)
        );
        assert_eq!(parsed("mqtt://h/"), (false, "h".into(), 1883, None, None));
        assert_eq!(parsed("mqtts://h"), (true, "h".into(), 8883, None, None));
        assert_eq!(
            parsed("mqtt://[::1]:1883"),
            (false, "::1".into(), 1883, None, None)
        );
        assert_eq!(
            BrokerUrl::parse("mqtt://[::1]:1883").unwrap().address(),
            "[::1]:1883"
        );
        let creds = parsed("mqtts://fleet%40ops:s3cr%3At@[fe80::1]:9000");
        assert_eq!(
            creds,
            (
                true,
                "fe80::1".into(),
                9000,
                Some("fleet@ops".into()),
                Some("s3cr:t".into())
            )
        );
    }

    #[test]
    fn other_schemes_paths_bad_ports_and_empty_hosts_are_errors_quoting_the_address() {
        for bad in [
            "http://h:80",
            "mqtt://h:1883/topic",
            "mqtt://h:99999",
            "mqtt://",
            "mqtt://h?x=1",
        ] {
            let err = BrokerUrl::parse(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let b = BrokerUrl::parse("mqtt://u:hunter2@h").unwrap();
        assert!(!format!("{b:?}").contains("hunter2"));
    }
}
