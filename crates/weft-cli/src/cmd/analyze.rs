//! `weft analyze`: run the analyzers over files (offline) or over what weftd stores.

use super::{Context, Error};
use crate::source::read_inputs;
use std::io::Write;
use weft_config::analyze::{analyze, Level, Message, Options};
use weft_config::{parse_documents_lenient, parse_value, ConfigError, Resource, KINDS};

/// istioctl's exit codes, so CI scripts written for `istioctl analyze` keep working.
pub const EXIT_FOUND_ISSUES: u8 = 79;
pub const EXIT_DATA_ERROR: u8 = 65;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Log,
    Json,
    Yaml,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to analyze offline; without any, analyze what weftd stores.
    pub paths: Vec<String>,
    #[arg(short = 'R', long)]
    pub recursive: bool,
    #[arg(short = 'o', long, value_enum, default_value = "log")]
    pub output: Format,
    /// Report on every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Namespace to report on, and the namespace of file resources that name none.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

pub fn run(
    args: &Args,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Error> {
    let ns = args.namespace.as_deref().unwrap_or("default");
    let mut unparsed = 0;
    let resources = if args.paths.is_empty() {
        stored(ctx, err)?
    } else {
        let mut resources = Vec::new();
        for input in read_inputs(&args.paths, args.recursive)? {
            // Read like istioctl reads files: fields the schema does not know are pruned
            // with a warning, and validation errors become IST0106 findings below.
            for doc in parse_documents_lenient(&input.text) {
                match doc {
                    Ok((mut resource, pruned)) => {
                        if resource.metadata.namespace.is_empty() {
                            resource.metadata.namespace = ns.to_string();
                        }
                        for p in pruned {
                            writeln!(err, "Warning: {}: {}: {p}", input.name, resource.origin())?;
                        }
                        resources.push(resource);
                    }
                    // Kubernetes objects (Services, Pods) are outside the config model; a
                    // misspelt kind in an Istio group is a mistake worth reporting.
                    Err(ConfigError::UnknownKind { api_version, .. })
                        if !api_version.contains("istio.io") => {}
                    Err(e) => {
                        unparsed += 1;
                        writeln!(err, "Error: {}: {e}", input.name)?;
                    }
                }
            }
        }
        resources
    };

    let mut messages = analyze(&resources, &Options::default());
    // From the server every namespace is analyzed, so cross-namespace references resolve,
    // but only the chosen namespace is reported, as istioctl does.
    if args.paths.is_empty() && !args.all_namespaces {
        messages.retain(|m| in_namespace(m, ns));
    }
    let target = if args.all_namespaces {
        "all namespaces".to_string()
    } else {
        format!("namespace: {ns}")
    };
    match args.output {
        Format::Log => {
            for m in &messages {
                writeln!(out, "{m}")?;
            }
            if messages.is_empty() && unparsed == 0 {
                writeln!(
                    err,
                    "\u{2714} No validation issues found when analyzing {target}."
                )?;
            }
        }
        Format::Json => {
            let text = serde_json::to_string_pretty(&messages).expect("messages serialize");
            writeln!(out, "{text}")?;
        }
        Format::Yaml => {
            let text = serde_yaml::to_string(&messages).expect("messages serialize");
            out.write_all(text.as_bytes())?;
        }
    }
    let code = exit_code(&messages, unparsed);
    if code == EXIT_FOUND_ISSUES {
        writeln!(
            err,
            "error: analyzers found issues when analyzing {target}."
        )?;
    } else if code == EXIT_DATA_ERROR {
        writeln!(err, "error: some files couldn't be parsed.")?;
    }
    Ok(code)
}

/// Every resource weftd stores, in every namespace.
fn stored(ctx: &Context, err: &mut dyn Write) -> Result<Vec<Resource>, Error> {
    let client = ctx.client();
    let mut resources = Vec::new();
    // Secrets need the token to read and no analyzer looks at them.
    for info in KINDS.iter().filter(|i| !i.kind.is_sensitive()) {
        for item in client.list(info.kind, None, None)? {
            match parse_value(0, item) {
                Ok(r) => resources.push(r),
                // Stored objects were valid when written; one that no longer parses is
                // reported but must not hide findings about the rest.
                Err(e) => writeln!(err, "Warning: skipping a stored {}: {e}", info.name)?,
            }
        }
    }
    Ok(resources)
}

/// Whether a message's origin (`Kind namespace/name`) is in `ns`; origins without a
/// namespace (cluster-wide) are always reported.
fn in_namespace(m: &Message, ns: &str) -> bool {
    match m
        .origin
        .split_once(' ')
        .and_then(|(_, key)| key.split_once('/'))
    {
        Some((origin_ns, _)) => origin_ns == ns,
        None => true,
    }
}

/// 79 when any finding is an Error, else 65 when some input did not parse, else 0.
fn exit_code(messages: &[Message], unparsed: usize) -> u8 {
    if messages.iter().any(|m| m.level == Level::Error) {
        EXIT_FOUND_ISSUES
    } else if unparsed > 0 {
        EXIT_DATA_ERROR
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(level: Level, origin: &str) -> Message {
        Message {
            code: "IST0101",
            level,
            message: "Referenced host+subset in destinationrule not found: \"reviews+v9\"".into(),
            origin: origin.into(),
            documentation_url: String::new(),
        }
    }

    #[test]
    fn errors_exit_79_warnings_do_not() {
        assert_eq!(
            exit_code(&[msg(Level::Warning, "x"), msg(Level::Error, "x")], 0),
            79
        );
        assert_eq!(exit_code(&[msg(Level::Warning, "x")], 0), 0);
        assert_eq!(exit_code(&[msg(Level::Info, "x")], 2), 65);
        assert_eq!(exit_code(&[], 0), 0);
    }

    #[test]
    fn namespace_filter_reads_the_origin() {
        assert!(in_namespace(
            &msg(Level::Error, "VirtualService default/reviews"),
            "default"
        ));
        assert!(!in_namespace(
            &msg(Level::Error, "VirtualService prod/reviews"),
            "default"
        ));
        assert!(in_namespace(&msg(Level::Info, "Namespace default"), "prod"));
    }

    /// Runs `weft analyze FILE` offline over `yaml`: (exit code, stdout, stderr).
    fn analyze_offline(yaml: &str) -> (u8, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("input.yaml");
        std::fs::write(&file, yaml).unwrap();
        let args = Args {
            paths: vec![file.display().to_string()],
            recursive: false,
            output: Format::Log,
            all_namespaces: false,
            namespace: None,
        };
        let ctx = Context {
            server: "http://127.0.0.1:1".into(),
            token: None,
            data_dir: dir.path().into(),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&args, &ctx, &mut out, &mut err).unwrap();
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn offline_without_findings_says_so() {
        let (code, out, err) = analyze_offline(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\nspec: {egress: [{hosts: [\"./*\"]}]}\n",
        );
        assert_eq!(code, 0);
        assert!(out.is_empty());
        assert_eq!(
            err,
            "\u{2714} No validation issues found when analyzing namespace: default.\n"
        );
    }

    #[test]
    fn offline_prunes_unknown_fields_and_reports_schema_errors() {
        let (code, out, err) = analyze_offline(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  selector: {istio: ingressgateway}\n  colour: blue\n  servers:\n  - hosts: [\"*\"]\n",
        );
        assert_eq!(code, EXIT_FOUND_ISSUES, "{out}{err}");
        assert!(
            err.contains("Gateway default/gw: spec.colour: unknown field, ignored"),
            "{err}"
        );
        assert!(
            out.contains("Error [IST0106] (Gateway default/gw) Schema validation error: spec.servers[0].port: Required value"),
            "{out}"
        );
    }
}
