//! A kube-rs client from an explicit kubeconfig path, or kube's defaults ($KUBECONFIG,
//! ~/.kube/config, in-cluster).

use std::path::Path;

use anyhow::{Context, Result};

pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .context("loading the kubeconfig")?
        }
        None => kube::Config::infer()
            .await
            .context("finding a kubeconfig")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}
