//! The other clients Skiff must serve: kube-rs (typed `Api`, `watcher`, `Discovery::run`) and
//! the official Python client (CRUD, strategic merge patch with a dict, watch).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::Discovery;
use kube::runtime::watcher;
use skiff_tests::kubectl::Up;

async fn client(up: &Up) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(up.kubeconfig())?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

fn cm(name: &str, value: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c.data = Some([("k".to_string(), value.to_string())].into_iter().collect());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_api_watcher_and_discovery_work() -> anyhow::Result<()> {
    let up = Up::start().await?;
    let client = client(&up).await?;
    let version = client.apiserver_version().await?;
    anyhow::ensure!(version.minor == "33", "{version:?}");

    // Discovery::run uses the legacy per-group-version documents.
    let discovery = Discovery::new(client.clone()).run().await?;
    let apps = discovery
        .get("apps")
        .ok_or_else(|| anyhow::anyhow!("no apps group"))?;
    anyhow::ensure!(
        apps.recommended_resources()
            .iter()
            .any(|(r, _)| r.plural == "deployments"),
        "apps/v1 deployments missing"
    );

    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    // The runtime watcher: a list then a watch, relisting as needed.
    let mut stream = watcher(
        api.clone(),
        watcher::Config::default().labels("kube-rs=yes"),
    )
    .boxed();
    let collector = tokio::spawn(async move {
        let mut names = std::collections::BTreeSet::new();
        while let Some(ev) = stream.next().await {
            if let Ok(watcher::Event::Apply(o)) = ev {
                names.insert(o.metadata.name.unwrap_or_default());
                if names.len() >= 2 {
                    break;
                }
            }
        }
        names
    });

    let mut first = cm("kr-1", "v1");
    first.metadata.labels = Some(
        [("kube-rs".to_string(), "yes".to_string())]
            .into_iter()
            .collect(),
    );
    let created = api.create(&PostParams::default(), &first).await?;
    anyhow::ensure!(created.metadata.uid.is_some());
    let got = api.get("kr-1").await?;
    anyhow::ensure!(
        got.data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(String::as_str)
            == Some("v1")
    );
    let merged = api
        .patch(
            "kr-1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"m": "1"}})),
        )
        .await?;
    anyhow::ensure!(merged.data.as_ref().is_some_and(|d| d.len() == 2));
    let applied_cfg = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kr-2", "labels": {"kube-rs": "yes"}}, "data": {"a": "1"}});
    let applied = api
        .patch(
            "kr-2",
            &PatchParams::apply("kube-rs-test"),
            &Patch::Apply(applied_cfg),
        )
        .await?;
    anyhow::ensure!(applied.metadata.managed_fields.is_some_and(|m| {
        m.iter()
            .any(|f| f.manager.as_deref() == Some("kube-rs-test"))
    }));
    let listed = api
        .list(&ListParams::default().labels("kube-rs=yes"))
        .await?;
    anyhow::ensure!(listed.items.len() == 2, "{}", listed.items.len());
    let names = tokio::time::timeout(Duration::from_secs(15), collector).await??;
    anyhow::ensure!(
        names.contains("kr-1") && names.contains("kr-2"),
        "{names:?}"
    );
    api.delete("kr-1", &DeleteParams::default()).await?;
    let gone = api.get_opt("kr-1").await?;
    anyhow::ensure!(gone.is_none());
    let err = api.get("kr-1").await.expect_err("deleted");
    match err {
        kube::Error::Api(s) => anyhow::ensure!(s.code == 404, "{s:?}"),
        other => anyhow::bail!("unexpected error {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_works() -> anyhow::Result<()> {
    let up = Up::start().await?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/client_e2e.py");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(up.kubeconfig())
        .arg("py-e2e")
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "python client e2e failed (is the kubernetes package installed? ops/deps installs it):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
