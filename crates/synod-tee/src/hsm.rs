//! Sealing roots wrapped by an HSM (feature `hsm`): each sealed blob gets a fresh 256-bit data
//! key, wrapped with `CKM_AES_KEY_WRAP_PAD` (RFC 5649) by an AES-256 key that lives in a PKCS#11
//! token and is created non-extractable and sensitive, so it never leaves the token. The blob
//! stores the wrapped data key beside its ciphertext (see [`crate::seal`]); unsealing asks the
//! token to unwrap it.
//!
//! Tokens are selected by label, never by slot id (slot ids change when a token is
//! initialised): the CLI takes `--hsm-module`, `--hsm-token-label` and `--hsm-pin-file`.

use std::fmt;
use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as Pkcs11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use rand::RngCore as _;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::seal::{KeySource, SealingRoot};

pub mod test_token;

/// Where the wrapping key lives.
#[derive(Clone)]
pub struct HsmConfig {
    /// The PKCS#11 module (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The user PIN.
    pub pin: Zeroizing<String>,
    /// The label of the wrapping key inside the token (created if missing).
    pub key_label: String,
}

impl fmt::Debug for HsmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HsmConfig")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"[redacted]")
            .field("key_label", &self.key_label)
            .finish()
    }
}

impl HsmConfig {
    /// A configuration whose PIN is the first line of `pin_file`.
    pub fn with_pin_file(
        module: impl Into<PathBuf>,
        token_label: impl Into<String>,
        pin_file: &Path,
        key_label: impl Into<String>,
    ) -> Result<Self> {
        let text = Zeroizing::new(std::fs::read_to_string(pin_file)?);
        let pin = Zeroizing::new(text.lines().next().unwrap_or("").to_owned());
        Ok(Self {
            module: module.into(),
            token_label: token_label.into(),
            pin,
            key_label: key_label.into(),
        })
    }
}

fn hsm(what: &str) -> impl Fn(Pkcs11Error) -> Error + '_ {
    move |e| Error::Hsm(format!("{what}: {e}"))
}

/// A logged-in session on the token and the handle of its wrapping key.
pub struct HsmKeyWrapper {
    // Field order matters: the session must close before the library is finalised.
    session: Session,
    key: ObjectHandle,
    _pkcs11: Pkcs11,
}

impl fmt::Debug for HsmKeyWrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HsmKeyWrapper")
            .field("key", &self.key)
            .finish()
    }
}

impl HsmKeyWrapper {
    /// Loads the module, finds the token by label, logs in and finds (or creates) the wrapping
    /// key.
    pub fn open(config: &HsmConfig) -> Result<Self> {
        let pkcs11 = Pkcs11::new(&config.module).map_err(hsm("loading the PKCS#11 module"))?;
        match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(Pkcs11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(hsm("C_Initialize")(e)),
        }
        let slot = pkcs11
            .get_slots_with_token()
            .map_err(hsm("listing slots"))?
            .into_iter()
            .find(|&slot| {
                pkcs11
                    .get_token_info(slot)
                    .is_ok_and(|info| info.label().trim_end() == config.token_label)
            })
            .ok_or_else(|| Error::Hsm(format!("no token labelled {:?}", config.token_label)))?;
        let session = pkcs11
            .open_rw_session(slot)
            .map_err(hsm("opening a session"))?;
        let pin = AuthPin::new(config.pin.as_str().into());
        // PKCS#11 login state belongs to the application, not the session: another open wrapper
        // of this process may have logged in already.
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(Pkcs11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(hsm("logging in")(e)),
        }
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(config.key_label.as_bytes().to_vec()),
            ])
            .map_err(hsm("finding the wrapping key"))?;
        let key = match found.first() {
            Some(&key) => key,
            None => session
                .generate_key(
                    &Mechanism::AesKeyGen,
                    &[
                        Attribute::Class(ObjectClass::SECRET_KEY),
                        Attribute::KeyType(KeyType::AES),
                        Attribute::ValueLen(32.into()),
                        Attribute::Token(true),
                        Attribute::Private(true),
                        Attribute::Sensitive(true),
                        Attribute::Extractable(false),
                        Attribute::Wrap(true),
                        Attribute::Unwrap(true),
                        Attribute::Encrypt(false),
                        Attribute::Decrypt(false),
                        Attribute::Label(config.key_label.as_bytes().to_vec()),
                    ],
                )
                .map_err(hsm("generating the wrapping key"))?,
        };
        Ok(Self {
            session,
            key,
            _pkcs11: pkcs11,
        })
    }

    /// Whether the token reports the wrapping key as extractable (it must not be).
    pub fn wrapping_key_extractable(&self) -> Result<bool> {
        let attrs = self
            .session
            .get_attributes(self.key, &[AttributeType::Extractable])
            .map_err(hsm("reading the wrapping key's attributes"))?;
        Ok(attrs
            .iter()
            .any(|a| matches!(a, Attribute::Extractable(true))))
    }

    /// Tries to read the wrapping key's value; the token must refuse.
    pub fn try_read_wrapping_key(&self) -> Result<Vec<u8>> {
        let attrs = self
            .session
            .get_attributes(self.key, &[AttributeType::Value])
            .map_err(hsm("reading the wrapping key's value"))?;
        attrs
            .into_iter()
            .find_map(|a| match a {
                Attribute::Value(v) => Some(v),
                _ => None,
            })
            .ok_or_else(|| Error::Hsm("the token did not reveal the key value".into()))
    }

    /// A transient token object holding `value` as an AES key, wrappable.
    fn import_data_key(&self, value: &[u8; 32]) -> Result<ObjectHandle> {
        self.session
            .create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Value(value.to_vec()),
                Attribute::Token(false),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ])
            .map_err(hsm("importing the data key"))
    }
}

impl SealingRoot for HsmKeyWrapper {
    fn source(&self) -> KeySource {
        KeySource::HsmWrapped
    }

    fn fresh(&mut self) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>)> {
        let mut data_key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(data_key.as_mut());
        let object = self.import_data_key(&data_key)?;
        let wrapped = self
            .session
            .wrap_key(&Mechanism::AesKeyWrapPad, self.key, object);
        let destroyed = self.session.destroy_object(object);
        let wrapped = wrapped.map_err(hsm("wrapping the data key"))?;
        destroyed.map_err(hsm("destroying the transient data key"))?;
        Ok((data_key, wrapped))
    }

    fn recover(&mut self, stored: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let object = self
            .session
            .unwrap_key(
                &Mechanism::AesKeyWrapPad,
                self.key,
                stored,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Token(false),
                    Attribute::Sensitive(false),
                    Attribute::Extractable(true),
                ],
            )
            .map_err(hsm("unwrapping the data key"))?;
        let value = self
            .session
            .get_attributes(object, &[AttributeType::Value])
            .map_err(hsm("reading the unwrapped data key"));
        let destroyed = self.session.destroy_object(object);
        let value = value?;
        destroyed.map_err(hsm("destroying the transient data key"))?;
        let bytes = value
            .into_iter()
            .find_map(|a| match a {
                Attribute::Value(v) => Some(Zeroizing::new(v)),
                _ => None,
            })
            .ok_or_else(|| Error::Hsm("the unwrapped data key has no value".into()))?;
        let mut out = Zeroizing::new([0u8; 32]);
        if bytes.len() != out.len() {
            return Err(Error::Hsm(format!(
                "unwrapped data key is {} bytes, expected 32",
                bytes.len()
            )));
        }
        out.copy_from_slice(&bytes);
        Ok(out)
    }
}
