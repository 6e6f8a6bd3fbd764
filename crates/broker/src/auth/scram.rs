//! The server side of SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), checked against
//! the credentials in the metadata image.
//!
//! Written here rather than taken from rsasl (which serves PLAIN and the client side): rsasl
//! holds the client's final nonce to be exactly the combined nonce and rebuilds the signed
//! message from its own parts. Kafka's server accepts a final nonce that *ends with* the one
//! it sent and verifies the proof over the bytes it received, and librdkafka 2.0 (Debian
//! 12's, so kcat's) relies on that: it repeats its own nonce in front of the combined one.
//! Replay protection is kept: the proof covers the fresh server nonce either way.
//!
//! An unknown user gets a server-first message with a made-up salt and fails at the proof,
//! as a wrong password does, so the exchange does not tell which users exist.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Mac, SimpleHmac};
use rand::RngCore;
use sha2::{Digest, Sha256, Sha512};
use strom_metadata::records::{ScramCredential, ScramMechanism};
use strom_metadata::MetadataImage;

/// Bytes of randomness in the server's nonce (base64, so 32 printable characters).
const NONCE_BYTES: usize = 24;

/// What a client token did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Send this and wait for the client's next token.
    Continue(Vec<u8>),
    /// The client proved it is `user`; send the server-final message.
    Authenticated {
        /// The user name.
        user: String,
        /// The server-final message (the server's signature).
        last: Vec<u8>,
    },
    /// Refused.
    Failed,
}

/// One exchange.
pub(crate) struct ScramServer {
    mechanism: ScramMechanism,
    image: Arc<MetadataImage>,
    state: State,
}

enum State {
    WaitingClientFirst,
    WaitingClientFinal {
        /// The client-first message without its GS2 header.
        client_first_bare: String,
        server_first: String,
        /// The combined nonce (client's then server's).
        nonce: String,
        /// The GS2 header, which the client-final `c=` attribute must repeat.
        gs2_header: String,
        user: String,
        /// `None` for an unknown user: the proof cannot match.
        credential: Option<ScramCredential>,
    },
    Finished,
}

impl ScramServer {
    /// An exchange for `mechanism` against `image`'s credentials.
    pub(crate) fn new(mechanism: ScramMechanism, image: Arc<MetadataImage>) -> ScramServer {
        ScramServer {
            mechanism,
            image,
            state: State::WaitingClientFirst,
        }
    }

    /// Feeds the client's next token.
    pub(crate) fn step(&mut self, token: &[u8]) -> Outcome {
        let state = std::mem::replace(&mut self.state, State::Finished);
        let Ok(token) = std::str::from_utf8(token) else {
            return Outcome::Failed;
        };
        match state {
            State::WaitingClientFirst => match self.client_first(token) {
                Some(reply) => Outcome::Continue(reply),
                None => Outcome::Failed,
            },
            State::WaitingClientFinal {
                client_first_bare,
                server_first,
                nonce,
                gs2_header,
                user,
                credential,
            } => {
                let Some((without_proof, proof)) = token.rsplit_once(",p=") else {
                    return Outcome::Failed;
                };
                let mut attributes = without_proof.split(',');
                let channel_binding = attributes.next().and_then(|a| a.strip_prefix("c="));
                let final_nonce = attributes.next().and_then(|a| a.strip_prefix("r="));
                let binding_ok = channel_binding
                    .and_then(|c| B64.decode(c).ok())
                    .is_some_and(|c| c == gs2_header.as_bytes());
                // Kafka's check (see the module comment): the nonce ends with the one sent.
                let nonce_ok = final_nonce.is_some_and(|n| n.ends_with(&nonce));
                let (Some(credential), true, true) = (credential, binding_ok, nonce_ok) else {
                    return Outcome::Failed;
                };
                let Ok(proof) = B64.decode(proof) else {
                    return Outcome::Failed;
                };
                let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
                let m = self.mechanism;
                let client_signature = hmac(m, &credential.stored_key, auth_message.as_bytes());
                if proof.len() != client_signature.len() {
                    return Outcome::Failed;
                }
                let client_key: Vec<u8> = proof
                    .iter()
                    .zip(&client_signature)
                    .map(|(p, s)| p ^ s)
                    .collect();
                if !constant_time_eq(&hash(m, &client_key), &credential.stored_key) {
                    return Outcome::Failed;
                }
                let server_signature = hmac(m, &credential.server_key, auth_message.as_bytes());
                Outcome::Authenticated {
                    user,
                    last: format!("v={}", B64.encode(server_signature)).into_bytes(),
                }
            }
            State::Finished => Outcome::Failed,
        }
    }

    /// Parses `gs2-header client-first-message-bare` and answers the server-first message.
    fn client_first(&mut self, token: &str) -> Option<Vec<u8>> {
        // GS2 header: "n," or "y," (no channel binding; Kafka offers none), an optional
        // "a=<authzid>", and ",".
        let mut parts = token.splitn(3, ',');
        let binding = parts.next()?;
        let authzid = parts.next()?;
        let bare = parts.next()?;
        if binding != "n" && binding != "y" {
            return None;
        }
        let authzid = match authzid {
            "" => None,
            a => Some(decode_saslname(a.strip_prefix("a=")?)?),
        };
        let gs2_header = token[..token.len() - bare.len()].to_string();
        let mut attributes = bare.split(',');
        let user = decode_saslname(attributes.next()?.strip_prefix("n=")?)?;
        let client_nonce = attributes.next()?.strip_prefix("r=")?;
        if user.is_empty() || client_nonce.is_empty() {
            return None;
        }
        // Impersonation (an authorization id other than the user) is refused, as in Kafka.
        if authzid.as_deref().is_some_and(|a| a != user) {
            return None;
        }
        let mut random = [0u8; NONCE_BYTES];
        rand::thread_rng().fill_bytes(&mut random);
        let nonce = format!("{client_nonce}{}", B64.encode(random));
        let credential = self.image.scram_credential(&user, self.mechanism).cloned();
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            // The same made-up salt for a user at every attempt, as a real user's is the
            // same: two attempts must not tell an unknown user from a known one. 4096 is the
            // iteration count Kafka's tools give by default.
            None => (fake_salt(&user, self.mechanism), 4096),
        };
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
        let reply = server_first.clone().into_bytes();
        self.state = State::WaitingClientFinal {
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
            gs2_header,
            user,
            credential,
        };
        Some(reply)
    }
}

/// A salt for `user`, who has no credential: an HMAC of the name under a secret drawn once
/// per process, so it is stable for the user and says nothing about anyone.
fn fake_salt(user: &str, mechanism: ScramMechanism) -> Vec<u8> {
    static SECRET: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let secret = SECRET.get_or_init(|| {
        let mut s = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut s);
        s
    });
    let mut message = user.as_bytes().to_vec();
    message.push(0);
    message.extend_from_slice(mechanism.name().as_bytes());
    let mut salt = hmac(ScramMechanism::Sha256, secret, &message);
    salt.truncate(16);
    salt
}

/// A SCRAM `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is malformed.
fn decode_saslname(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

fn hmac(m: ScramMechanism, key: &[u8], message: &[u8]) -> Vec<u8> {
    match m {
        ScramMechanism::Sha256 => mac::<Sha256>(key, message),
        ScramMechanism::Sha512 => mac::<Sha512>(key, message),
    }
}

fn mac<D: Digest + sha2::digest::core_api::BlockSizeUser>(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: this cannot fail.
    match <SimpleHmac<D> as Mac>::new_from_slice(key) {
        Ok(mut h) => {
            h.update(message);
            h.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn hash(m: ScramMechanism, data: &[u8]) -> Vec<u8> {
    match m {
        ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
        ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
    }
}

/// Compares without an early exit on the first differing byte.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a server keeps for a SCRAM user, from the salted password AlterUserScramCredentials
/// carries (the client ran PBKDF2): `StoredKey = H(HMAC(salted, "Client Key"))` and
/// `ServerKey = HMAC(salted, "Server Key")`.
pub fn credential(
    mechanism: ScramMechanism,
    salted_password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> ScramCredential {
    let client_key = hmac(mechanism, salted_password, b"Client Key");
    ScramCredential {
        salt: salt.to_vec(),
        stored_key: hash(mechanism, &client_key),
        server_key: hmac(mechanism, salted_password, b"Server Key"),
        iterations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_metadata::records::MetadataRecord;

    /// RFC 7677's salt and the password "pencil" salted with it, 4096 iterations.
    fn rfc7677_salted() -> (Vec<u8>, Vec<u8>) {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap_or_default();
        let mut salted = Default::default();
        rsasl::mechanisms::scram::tools::hash_password::<Sha256>(
            b"pencil",
            4096,
            &salt,
            &mut salted,
        );
        (salt, salted.to_vec())
    }

    /// RFC 7677's example: user "user", password "pencil", this salt, 4096 iterations.
    fn rfc7677_image() -> Arc<MetadataImage> {
        let (salt, salted) = rfc7677_salted();
        let mut image = MetadataImage::default();
        image.apply(
            0,
            &MetadataRecord::UserScramCredential {
                name: "user".into(),
                mechanism: ScramMechanism::Sha256,
                credential: credential(ScramMechanism::Sha256, &salted, &salt, 4096),
            },
        );
        Arc::new(image)
    }

    /// The server nonce is random; the RFC's final message needs the RFC's. Replaces it.
    fn with_rfc_nonce(server: &mut ScramServer) {
        if let State::WaitingClientFinal {
            server_first,
            nonce,
            ..
        } = &mut server.state
        {
            *nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into();
            *server_first = format!("r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
        }
    }

    const RFC_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

    #[test]
    fn the_rfc_7677_exchange_verifies_and_signs() {
        let mut s = ScramServer::new(ScramMechanism::Sha256, rfc7677_image());
        let Outcome::Continue(first) = s.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO") else {
            panic!("client-first refused");
        };
        let first = String::from_utf8(first).unwrap_or_default();
        assert!(first.starts_with("r=rOprNGfwEbeRWgbNEkqO"), "{first}");
        assert!(
            first.ends_with(",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
            "{first}"
        );
        with_rfc_nonce(&mut s);
        assert_eq!(
            s.step(RFC_FINAL.as_bytes()),
            Outcome::Authenticated {
                user: "user".into(),
                last: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
            }
        );
    }

    #[test]
    fn librdkafka_2_0s_repeated_client_nonce_is_accepted_as_kafka_does() {
        let mut s = ScramServer::new(ScramMechanism::Sha256, rfc7677_image());
        let first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let Outcome::Continue(server_first) = s.step(first.as_bytes()) else {
            panic!("client-first refused");
        };
        let server_first = String::from_utf8(server_first).unwrap_or_default();
        let combined = server_first
            .strip_prefix("r=")
            .and_then(|r| r.split(',').next())
            .unwrap_or_default();
        // The client signs what it sends: its nonce, then the combined one.
        let without_proof = format!("c=biws,r=rOprNGfwEbeRWgbNEkqO{combined}");
        let auth = format!("n=user,r=rOprNGfwEbeRWgbNEkqO,{server_first},{without_proof}");
        let (_, salted) = rfc7677_salted();
        let client_key = mac::<Sha256>(&salted, b"Client Key");
        let signature = mac::<Sha256>(&Sha256::digest(&client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let last = format!("{without_proof},p={}", B64.encode(proof));
        assert!(matches!(
            s.step(last.as_bytes()),
            Outcome::Authenticated { .. }
        ));
    }

    #[test]
    fn wrong_proofs_nonces_bindings_and_unknown_users_fail() {
        let run = |first: &str, last: &str| {
            let mut s = ScramServer::new(ScramMechanism::Sha256, rfc7677_image());
            if !matches!(s.step(first.as_bytes()), Outcome::Continue(_)) {
                return Outcome::Failed;
            }
            with_rfc_nonce(&mut s);
            s.step(last.as_bytes())
        };
        let first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let bad_proof = RFC_FINAL.replace("p=dHzb", "p=dHzc");
        assert_eq!(run(first, &bad_proof), Outcome::Failed);
        let other_nonce = RFC_FINAL.replace("hNlF$k0", "hNlF$k1");
        assert_eq!(run(first, &other_nonce), Outcome::Failed);
        let other_binding = RFC_FINAL.replace("c=biws", "c=eSws");
        assert_eq!(run(first, &other_binding), Outcome::Failed);
        // An unknown user is answered like a known one, and fails at the proof.
        let mut s = ScramServer::new(ScramMechanism::Sha256, rfc7677_image());
        let Outcome::Continue(reply) = s.step(b"n,,n=nobody,r=abc") else {
            panic!("an unknown user must get a server-first message");
        };
        let reply = String::from_utf8_lossy(&reply).to_string();
        assert!(reply.contains(",i=4096"));
        let salt = |r: &str| r.split(",s=").nth(1).map(|t| t.to_string());
        let mut again = ScramServer::new(ScramMechanism::Sha256, rfc7677_image());
        let Outcome::Continue(second) = again.step(b"n,,n=nobody,r=xyz") else {
            panic!("an unknown user must get a server-first message");
        };
        assert_eq!(
            salt(&reply),
            salt(&String::from_utf8_lossy(&second)),
            "the same salt at every attempt, as for a real user"
        );
        with_rfc_nonce(&mut s);
        assert_eq!(s.step(RFC_FINAL.as_bytes()), Outcome::Failed);
        // Impersonation and malformed first messages.
        assert_eq!(run("n,a=admin,n=user,r=x", RFC_FINAL), Outcome::Failed);
        assert_eq!(run("p=tls-unique,,n=user,r=x", RFC_FINAL), Outcome::Failed);
        assert_eq!(run("n,,n=us=er,r=x", RFC_FINAL), Outcome::Failed);
        assert_eq!(run("garbage", RFC_FINAL), Outcome::Failed);
        // A token after the end.
        let mut s = ScramServer::new(ScramMechanism::Sha256, rfc7677_image());
        s.step(first.as_bytes());
        with_rfc_nonce(&mut s);
        assert!(matches!(
            s.step(RFC_FINAL.as_bytes()),
            Outcome::Authenticated { .. }
        ));
        assert_eq!(s.step(RFC_FINAL.as_bytes()), Outcome::Failed);
    }

    #[test]
    fn saslnames_decode_their_escapes() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(decode_saslname("plain").as_deref(), Some("plain"));
        assert_eq!(decode_saslname("bad=2"), None);
        assert_eq!(decode_saslname("bad=41"), None);
    }
}
