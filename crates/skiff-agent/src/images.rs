//! The images Skiff builds locally from Debian's static busybox (no registry is reachable): the
//! pod sandbox image the agent itself needs, and the shell and HTTP server images tests use.
//!
//! Each image is a `FROM scratch` build whose context is a tar written here in Rust (busybox,
//! a symlink per applet, a few files), sent to the engine's build API.

mod tar;

use crate::runtime::{ContainerRuntime, Result};

/// The image holding each pod's network namespace: a shell loop that exits 0 on SIGTERM.
pub const SANDBOX_IMAGE: &str = "skiff/sandbox:1";
/// A shell image: busybox with every applet linked.
pub const TEST_BUSYBOX_IMAGE: &str = "skiff-test/busybox:1";
/// busybox httpd serving `/www` on port 80.
pub const TEST_HTTPD_IMAGE: &str = "skiff-test/httpd:1";
/// Where busybox-static installs the binary on Debian.
pub const BUSYBOX_PATH: &str = "/bin/busybox";

/// The page the httpd test image serves at `/`.
pub const HTTPD_INDEX: &str = "hello from skiff httpd\n";

const SANDBOX_SCRIPT: &str = "#!/bin/sh\n\
# The pod sandbox: holds the network namespace until stopped.\n\
trap 'exit 0' TERM INT\n\
while :; do sleep 3600 & wait $!; done\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalImage {
    Sandbox,
    TestBusybox,
    TestHttpd,
}

impl LocalImage {
    /// The local image a tag names, if it is one of Skiff's (built here, never pulled).
    pub fn from_tag(tag: &str) -> Option<LocalImage> {
        [
            LocalImage::Sandbox,
            LocalImage::TestBusybox,
            LocalImage::TestHttpd,
        ]
        .into_iter()
        .find(|image| image.tag() == tag)
    }

    pub fn tag(self) -> &'static str {
        match self {
            LocalImage::Sandbox => SANDBOX_IMAGE,
            LocalImage::TestBusybox => TEST_BUSYBOX_IMAGE,
            LocalImage::TestHttpd => TEST_HTTPD_IMAGE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source} (install Debian's busybox-static)")]
    Busybox {
        path: String,
        source: std::io::Error,
    },
    #[error("listing busybox applets: {0}")]
    Applets(String),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::Error),
}

/// The applets a busybox binary provides (`busybox --list`).
fn applets(busybox: &str) -> Result<Vec<String>, Error> {
    let output = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| Error::Applets(e.to_string()))?;
    if !output.status.success() {
        return Err(Error::Applets(format!("exit status {}", output.status)));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| {
            !a.is_empty()
                && a.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' || b == b'['
                })
        })
        .filter(|a| *a != "busybox")
        .map(str::to_string)
        .collect())
}

/// The build context (a tar with a Dockerfile and `rootfs/`) of an image.
pub fn build_context(image: LocalImage, busybox_path: &str) -> Result<Vec<u8>, Error> {
    let busybox = std::fs::read(busybox_path).map_err(|source| Error::Busybox {
        path: busybox_path.to_string(),
        source,
    })?;
    let mut archive = tar::Builder::default();
    archive.directory("rootfs", 0o755);
    archive.directory("rootfs/bin", 0o755);
    archive.directory("rootfs/tmp", 0o1777);
    archive.directory("rootfs/etc", 0o755);
    archive.file("rootfs/bin/busybox", &busybox, 0o755);
    archive.file(
        "rootfs/etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    );
    archive.file("rootfs/etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644);
    let dockerfile = match image {
        LocalImage::Sandbox => {
            archive.symlink("rootfs/bin/sh", "busybox");
            archive.symlink("rootfs/bin/sleep", "busybox");
            archive.file("rootfs/pause", SANDBOX_SCRIPT.as_bytes(), 0o755);
            "FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\nSTOPSIGNAL SIGTERM\nCMD [\"/pause\"]\n"
                .to_string()
        }
        LocalImage::TestBusybox | LocalImage::TestHttpd => {
            for applet in applets(busybox_path)? {
                archive.symlink(&format!("rootfs/bin/{applet}"), "busybox");
            }
            archive.directory("rootfs/root", 0o700);
            if image == LocalImage::TestHttpd {
                archive.directory("rootfs/www", 0o755);
                archive.file("rootfs/www/index.html", HTTPD_INDEX.as_bytes(), 0o644);
                "FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin:/sbin:/usr/bin:/usr/sbin\nEXPOSE 80\nCMD [\"httpd\", \"-f\", \"-v\", \"-p\", \"80\", \"-h\", \"/www\"]\n".to_string()
            } else {
                "FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin:/sbin:/usr/bin:/usr/sbin\nCMD [\"sh\"]\n".to_string()
            }
        }
    };
    archive.file("Dockerfile", dockerfile.as_bytes(), 0o644);
    Ok(archive.finish())
}

/// Builds each image that the engine does not have yet. Builds in this process take turns, so
/// many pods needing the same absent image build it once.
pub async fn ensure(
    runtime: &dyn ContainerRuntime,
    images: &[LocalImage],
    busybox_path: &str,
) -> Result<(), Error> {
    static BUILDS: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    let _turn = BUILDS
        .get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await;
    for image in images {
        if runtime.image_present(image.tag()).await? {
            continue;
        }
        let context = build_context(*image, busybox_path)?;
        tracing::info!(image = image.tag(), "building local image");
        runtime.build_image(image.tag(), context).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::LocalImage;

    #[test]
    fn only_skiffs_own_tags_are_local_images() {
        assert_eq!(
            LocalImage::from_tag("skiff-test/busybox:1"),
            Some(LocalImage::TestBusybox)
        );
        assert_eq!(
            LocalImage::from_tag("skiff-test/httpd:1"),
            Some(LocalImage::TestHttpd)
        );
        assert_eq!(
            LocalImage::from_tag("skiff/sandbox:1"),
            Some(LocalImage::Sandbox)
        );
        assert_eq!(LocalImage::from_tag("skiff-test/busybox:2"), None);
        assert_eq!(LocalImage::from_tag("busybox:1"), None);
    }
}
