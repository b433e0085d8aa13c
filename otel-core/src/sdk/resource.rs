//! Resource detection: service, SDK, host, process and container attributes.

use opentelemetry::KeyValue;
use opentelemetry_sdk::resource::{Resource, ResourceDetector, TelemetryResourceDetector};
use opentelemetry_semantic_conventions::resource as res;

use super::env::SdkConfig;

/// Builds the resource from the configuration plus detected attributes.
///
/// Precedence (later wins): detected host/process/container attributes, then
/// `OTEL_RESOURCE_ATTRIBUTES`, then builder attributes, then `OTEL_SERVICE_NAME` / the builder's
/// service name. Without any service name, `unknown_service:<executable>` is used, as the
/// specification asks.
pub(crate) fn build_resource(config: &SdkConfig, extra: &[KeyValue], service_name: Option<&str>) -> Resource {
    let mut attrs: Vec<KeyValue> = detect();
    attrs.extend(config.resource_attributes.iter().cloned());
    attrs.extend(extra.iter().cloned());
    let explicit = service_name
        .map(str::to_owned)
        .or_else(|| config.service_name.clone())
        .or_else(|| {
            attrs
                .iter()
                .rev()
                .find(|kv| kv.key.as_str() == res::SERVICE_NAME)
                .map(|kv| kv.value.as_str().into_owned())
        });
    let name = explicit.unwrap_or_else(|| match executable_name() {
        Some(exe) => format!("unknown_service:{exe}"),
        None => "unknown_service".to_owned(),
    });
    attrs.retain(|kv| kv.key.as_str() != res::SERVICE_NAME);
    let telemetry: Box<dyn ResourceDetector> = Box::new(TelemetryResourceDetector);
    Resource::builder_empty()
        .with_detectors(&[telemetry])
        .with_attributes(attrs)
        .with_service_name(name)
        .build()
}

fn executable_name() -> Option<String> {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// Host, OS, process and container attributes that can be read cheaply and without I/O beyond
/// `/proc` files.
pub(crate) fn detect() -> Vec<KeyValue> {
    let mut attrs = Vec::new();
    if let Some(host) = hostname() {
        attrs.push(KeyValue::new(res::HOST_NAME, host));
    }
    attrs.push(KeyValue::new(res::HOST_ARCH, host_arch()));
    attrs.push(KeyValue::new(res::OS_TYPE, std::env::consts::OS));
    attrs.push(KeyValue::new(res::PROCESS_PID, i64::from(std::process::id())));
    if let Some(exe) = executable_name() {
        attrs.push(KeyValue::new(res::PROCESS_EXECUTABLE_NAME, exe));
    }
    attrs.push(KeyValue::new(res::PROCESS_RUNTIME_NAME, "rust"));
    if let Some(id) = container_id() {
        attrs.push(KeyValue::new(res::CONTAINER_ID, id));
    }
    attrs
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
}

/// Semconv `host.arch` values.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm32",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

fn container_id() -> Option<String> {
    if let Ok(cgroup) = std::fs::read_to_string("/proc/self/cgroup") {
        if let Some(id) = container_id_from_cgroup(&cgroup) {
            return Some(id);
        }
    }
    std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|m| container_id_from_mountinfo(&m))
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The container id from a cgroup v1 or v2 path: the last path segment, stripped of runtime
/// prefixes (`docker-`, `cri-containerd-`, `crio-`, `libpod-`) and the `.scope` suffix, when it is
/// 64 hex digits.
pub(crate) fn container_id_from_cgroup(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        let last = path.trim().rsplit('/').next()?;
        let last = last.strip_suffix(".scope").unwrap_or(last);
        let id = last.rsplit(['-', ':']).next().unwrap_or(last);
        is_hex64(id).then(|| id.to_owned())
    })
}

/// The container id from `/proc/self/mountinfo` (cgroup v2 hosts): the id directory of
/// `/containers/<id>/` mounts (`hostname`, `resolv.conf`, `hosts`).
pub(crate) fn container_id_from_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        line.split_whitespace().find_map(|field| {
            let mut parts = field.split('/');
            while let Some(p) = parts.next() {
                if p == "containers" || p == "overlay-containers" {
                    if let Some(id) = parts.next() {
                        if is_hex64(id) {
                            return Some(id.to_owned());
                        }
                    }
                }
            }
            None
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3c1e7d0b5f2a4e9c8d7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d";

    #[test]
    fn cgroup_v1_and_v2_paths() {
        let v1 = format!("12:memory:/docker/{ID}\n11:cpu:/docker/{ID}\n");
        assert_eq!(container_id_from_cgroup(&v1).as_deref(), Some(ID));
        let v2 = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(container_id_from_cgroup(&v2).as_deref(), Some(ID));
        let k8s = format!("0::/kubepods/besteffort/pod1234/cri-containerd-{ID}.scope\n");
        assert_eq!(container_id_from_cgroup(&k8s).as_deref(), Some(ID));
        let crio = format!("1:name=systemd:/kubepods.slice/crio-{ID}.scope");
        assert_eq!(container_id_from_cgroup(&crio).as_deref(), Some(ID));
        assert_eq!(container_id_from_cgroup("0::/user.slice/session-2.scope\n"), None);
        assert_eq!(container_id_from_cgroup("garbage"), None);
        assert_eq!(container_id_from_cgroup(""), None);
    }

    #[test]
    fn mountinfo() {
        let line = format!(
            "680 675 254:1 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw,relatime - ext4 /dev/vda1 rw"
        );
        assert_eq!(container_id_from_mountinfo(&line).as_deref(), Some(ID));
        assert_eq!(container_id_from_mountinfo("22 1 0:21 / /proc rw - proc proc rw"), None);
    }

    #[test]
    fn service_name_precedence() {
        let mut c = SdkConfig {
            resource_attributes: vec![KeyValue::new("service.name", "from-attrs"), KeyValue::new("team", "a")],
            ..SdkConfig::default()
        };
        let r = build_resource(&c, &[], None);
        assert_eq!(r.get(&"service.name".into()).unwrap().as_str(), "from-attrs");
        assert_eq!(r.get(&"team".into()).unwrap().as_str(), "a");
        assert_eq!(r.get(&"telemetry.sdk.language".into()).unwrap().as_str(), "rust");
        assert_eq!(r.get(&"process.pid".into()), Some(i64::from(std::process::id()).into()));
        c.service_name = Some("from-env".into());
        assert_eq!(
            build_resource(&c, &[], None)
                .get(&"service.name".into())
                .unwrap()
                .as_str(),
            "from-env"
        );
        assert_eq!(
            build_resource(&c, &[], Some("from-code"))
                .get(&"service.name".into())
                .unwrap()
                .as_str(),
            "from-code"
        );
        let r = build_resource(&SdkConfig::default(), &[], None);
        assert!(r
            .get(&"service.name".into())
            .unwrap()
            .as_str()
            .starts_with("unknown_service"));
    }
}
