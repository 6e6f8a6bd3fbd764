//! The mechanisms against rsasl's client (an implementation independent of the SCRAM
//! server): credentials made the way AlterUserScramCredentials makes them authenticate, and
//! nothing else does.

use std::io::Cursor;

use rsasl::mechanisms::scram::tools::hash_password;
use rsasl::prelude::SASLClient;
use strom_metadata::records::MetadataRecord;

use super::*;

/// The image with `user`'s SCRAM credential for `password`, derived as a Kafka admin client
/// does (PBKDF2 on the client, keys on the broker).
fn image_with(user: &str, mechanism: ScramMechanism, password: &str) -> Arc<MetadataImage> {
    let salt = b"a salt of sixteen";
    let salted = match mechanism {
        ScramMechanism::Sha256 => {
            let mut out = Default::default();
            hash_password::<sha2::Sha256>(password.as_bytes(), 4096, salt, &mut out);
            out.to_vec()
        }
        ScramMechanism::Sha512 => {
            let mut out = Default::default();
            hash_password::<sha2::Sha512>(password.as_bytes(), 4096, salt, &mut out);
            out.to_vec()
        }
    };
    let mut image = MetadataImage::default();
    image.apply(
        0,
        &MetadataRecord::UserScramCredential {
            name: user.into(),
            mechanism,
            credential: crate::auth::scram::credential(mechanism, &salted, salt, 4096),
        },
    );
    Arc::new(image)
}

/// Runs a whole exchange; the authenticated user, if any.
fn exchange(
    mechanism: Mechanism,
    image: Arc<MetadataImage>,
    plain: &[(&str, &str)],
    user: &str,
    password: &str,
) -> Option<String> {
    let plain_users = Arc::new(
        plain
            .iter()
            .map(|(u, p)| (u.to_string(), p.to_string()))
            .collect(),
    );
    let mut server = Engine::start(mechanism, image, &plain_users).ok()?;
    let config = SASLConfig::with_credentials(None, user.into(), password.into()).ok()?;
    let mechname = Mechname::parse(mechanism.name().as_bytes()).ok()?;
    let mut client = SASLClient::new(config).start_suggested(&[mechname]).ok()?;
    let mut to_server = Vec::new();
    client.step(None, &mut to_server).ok()?;
    for _ in 0..4 {
        let to_client = match server.step(&to_server) {
            Ok((None, reply)) => reply,
            Ok((Some(user), last)) => {
                if matches!(mechanism, Mechanism::Scram(_)) {
                    // The client checks the server's signature too.
                    client.step(Some(&last), &mut Vec::new()).ok()?;
                }
                return Some(user);
            }
            Err(()) => return None,
        };
        let mut next = Cursor::new(Vec::new());
        client.step(Some(&to_client), &mut next).ok()?;
        to_server = next.into_inner();
    }
    None
}

#[test]
fn scram_accepts_the_right_password_only() {
    for m in ScramMechanism::ALL {
        let image = image_with("alice", m, "alice-secret");
        let scram = Mechanism::Scram(m);
        assert_eq!(
            exchange(scram, image.clone(), &[], "alice", "alice-secret").as_deref(),
            Some("alice"),
            "{m:?}"
        );
        assert_eq!(exchange(scram, image.clone(), &[], "alice", "wrong"), None);
        assert_eq!(
            exchange(scram, image.clone(), &[], "mallory", "alice-secret"),
            None
        );
    }
    // A credential for one mechanism does not serve the other.
    let image = image_with("alice", ScramMechanism::Sha256, "alice-secret");
    let sha512 = Mechanism::Scram(ScramMechanism::Sha512);
    assert_eq!(exchange(sha512, image, &[], "alice", "alice-secret"), None);
}

#[test]
fn plain_checks_the_jaas_users() {
    let users = [("alice", "alice-secret"), ("bob", "bob-secret")];
    let image = Arc::new(MetadataImage::default());
    let run = |u: &str, p: &str| exchange(Mechanism::Plain, image.clone(), &users, u, p);
    assert_eq!(run("bob", "bob-secret").as_deref(), Some("bob"));
    assert_eq!(run("bob", "alice-secret"), None);
    assert_eq!(run("carol", "bob-secret"), None);
    assert_eq!(run("bob", "bob-secre"), None);
}
