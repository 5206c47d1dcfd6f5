//! `--acme-storage`: the account key (`account.key`, PKCS#8 DER) and each
//! site's `cert.pem` and `key.pem` in a folder named after its first host
//! name. Folders are 0700 and files 0600, written to a temporary name,
//! synced and renamed over the old one, so a crash or a full disk leaves
//! the previous pair whole, never half a file.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::jws::AccountKey;

/// A site's folder: its label with anything but `[a-z0-9.-]` replaced.
pub fn site_dir(storage: &Path, label: &str) -> PathBuf {
    let name: String = label
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' | '-' => c,
            _ => '_',
        })
        .collect();
    let name = name.trim_start_matches('.');
    storage
        .join("sites")
        .join(if name.is_empty() { "_" } else { name })
}

/// The stored account key, or a new one stored now.
pub fn account_key(storage: &Path) -> Result<AccountKey, String> {
    let path = storage.join("account.key");
    match fs::read(&path) {
        Ok(der) => AccountKey::from_pkcs8(&der).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = AccountKey::generate()?;
            make_dir(storage).map_err(|e| format!("{}: {e}", storage.display()))?;
            write_atomically(&path, key.pkcs8()).map_err(|e| format!("{}: {e}", path.display()))?;
            log::info!("acme: new account key in {}", path.display());
            Ok(key)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The stored chain and key of a site (PEM).
pub fn read_pair(dir: &Path) -> io::Result<(Vec<u8>, Vec<u8>)> {
    Ok((
        fs::read(dir.join("cert.pem"))?,
        fs::read(dir.join("key.pem"))?,
    ))
}

/// Stores a site's chain and key: the key first, so that a crash between
/// the two renames leaves a new key beside the old chain at worst, which
/// start-up refuses (the pair does not match) and replaces.
pub fn write_pair(dir: &Path, chain: &str, key: &str) -> io::Result<()> {
    make_dir(dir)?;
    write_atomically(&dir.join("key.pem"), key.as_bytes())?;
    write_atomically(&dir.join("cert.pem"), chain.as_bytes())
}

fn make_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Writes `path` as a whole: a temporary file (0600) beside it, synced,
/// renamed over it, and the folder synced.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("holdline-acme-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn pairs_are_written_whole_and_private() {
        let storage = scratch("pairs");
        let dir = site_dir(&storage, "www.example.com");
        assert!(dir.ends_with("sites/www.example.com"));
        write_pair(&dir, "CHAIN", "KEY").unwrap();
        write_pair(&dir, "CHAIN2", "KEY2").unwrap();
        assert_eq!(
            read_pair(&dir).unwrap(),
            (b"CHAIN2".to_vec(), b"KEY2".to_vec())
        );
        for file in ["cert.pem", "key.pem"] {
            let mode = fs::metadata(dir.join(file)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let mode = fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        let _ = fs::remove_dir_all(&storage);
    }

    #[test]
    fn the_account_key_is_made_once_and_kept() {
        let storage = scratch("account");
        let first = account_key(&storage).unwrap().thumbprint();
        let again = account_key(&storage).unwrap().thumbprint();
        assert_eq!(first, again);
        let mode = fs::metadata(storage.join("account.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::write(storage.join("account.key"), b"junk").unwrap();
        assert!(account_key(&storage).is_err());
        let _ = fs::remove_dir_all(&storage);
    }

    #[test]
    fn a_label_cannot_leave_the_storage() {
        let storage = Path::new("/s");
        assert_eq!(
            site_dir(storage, "../../etc"),
            Path::new("/s/sites/_.._etc")
        );
        assert_eq!(site_dir(storage, "A/B"), Path::new("/s/sites/___"));
        assert_eq!(site_dir(storage, ""), Path::new("/s/sites/_"));
    }
}
