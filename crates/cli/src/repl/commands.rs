//! The REPL's `:` commands: their table (for `:help`, completion and "did you mean") and
//! the parsing of a command line into a [`Command`].

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::picture::{Axis, ViewSpec};

/// One command's name, usage and purpose.
pub struct CommandInfo {
    /// The name after `:`.
    pub name: &'static str,
    /// Its arguments.
    pub usage: &'static str,
    /// What it does, in one line.
    pub meaning: &'static str,
}

/// Every command, in the order `:help` lists them.
pub const COMMANDS: &[CommandInfo] = &[
    CommandInfo {
        name: "load",
        usage: "NAME PATH",
        meaning: "open an image under NAME",
    },
    CommandInfo {
        name: "save",
        usage: "NAME PATH [--copy-header-from NAME]",
        meaning: "write NAME to a NIfTI file (.nii, .nii.gz)",
    },
    CommandInfo {
        name: "info",
        usage: "NAME",
        meaning: "header: shape, dtype, voxel sizes, TR, affine",
    },
    CommandInfo {
        name: "vars",
        usage: "",
        meaning: "list the names in the session",
    },
    CommandInfo {
        name: "funcs",
        usage: "[PREFIX]",
        meaning: "the supported functions with their signatures",
    },
    CommandInfo {
        name: "explain",
        usage: "FORMULA",
        meaning: "typed tree, plan and native code of FORMULA",
    },
    CommandInfo {
        name: "show",
        usage: "NAME [x|y|z] [INDEX] [T]",
        meaning: "picture of slices (default: x, y, z through the centre; T: volume)",
    },
    CommandInfo {
        name: "png",
        usage: "NAME PATH [x|y|z] [INDEX] [T] [--scale N]",
        meaning: "the picture of :show as a PNG (N pixels per voxel, default 4)",
    },
    CommandInfo {
        name: "help",
        usage: "",
        meaning: "this help",
    },
    CommandInfo {
        name: "quit",
        usage: "",
        meaning: "leave (also Ctrl-D)",
    },
];

/// A parsed command.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// `:load NAME PATH`
    Load { name: String, path: PathBuf },
    /// `:save NAME PATH [--copy-header-from NAME]`
    Save {
        name: String,
        path: PathBuf,
        copy_header_from: Option<String>,
    },
    /// `:info NAME`
    Info { name: String },
    /// `:vars`
    Vars,
    /// `:funcs [PREFIX]`
    Funcs { prefix: Option<String> },
    /// `:explain FORMULA`
    Explain { formula: String },
    /// `:show NAME [x|y|z] [INDEX] [T]`
    Show { name: String, view: ViewSpec },
    /// `:png NAME PATH [x|y|z] [INDEX] [T] [--scale N]`
    Png {
        name: String,
        path: PathBuf,
        view: ViewSpec,
        scale: usize,
    },
    /// `:help`
    Help,
    /// `:quit`
    Quit,
}

/// Parses the text after `:`.
pub fn parse(text: &str) -> Result<Command> {
    let text = text.trim();
    let (head, rest) = match text.split_once(char::is_whitespace) {
        Some((head, rest)) => (head, rest.trim()),
        None => (text, ""),
    };
    let args: Vec<&str> = rest.split_whitespace().collect();
    let usage = |name: &str| -> String {
        let info = COMMANDS.iter().find(|c| c.name == name);
        format!("usage: :{name} {}", info.map_or("", |c| c.usage))
    };
    let command = match head {
        "load" | "l" => match args.as_slice() {
            [name, path] => Command::Load {
                name: name.to_string(),
                path: PathBuf::from(path),
            },
            _ => bail!("{}", usage("load")),
        },
        "save" | "s" => {
            let mut positional = Vec::new();
            let mut copy_header_from = None;
            let mut iter = args.iter();
            while let Some(arg) = iter.next() {
                if let Some(value) = arg.strip_prefix("--copy-header-from=") {
                    copy_header_from = Some(value.to_string());
                } else if *arg == "--copy-header-from" {
                    let value = iter.next().with_context(|| {
                        format!("--copy-header-from needs a NAME; {}", usage("save"))
                    })?;
                    copy_header_from = Some(value.to_string());
                } else if arg.starts_with("--") {
                    bail!("unknown option `{arg}`; {}", usage("save"));
                } else {
                    positional.push(*arg);
                }
            }
            match positional.as_slice() {
                [name, path] => Command::Save {
                    name: name.to_string(),
                    path: PathBuf::from(path),
                    copy_header_from,
                },
                _ => bail!("{}", usage("save")),
            }
        }
        "info" | "i" => match args.as_slice() {
            [name] => Command::Info {
                name: name.to_string(),
            },
            _ => bail!("{}", usage("info")),
        },
        "vars" | "v" => Command::Vars,
        "funcs" | "f" => match args.as_slice() {
            [] => Command::Funcs { prefix: None },
            [prefix] => Command::Funcs {
                prefix: Some(prefix.to_string()),
            },
            _ => bail!("{}", usage("funcs")),
        },
        "explain" | "e" => {
            if rest.is_empty() {
                bail!("{}", usage("explain"));
            }
            Command::Explain {
                formula: rest.to_string(),
            }
        }
        "show" => {
            let Some((name, view_args)) = args.split_first() else {
                bail!("{}", usage("show"));
            };
            Command::Show {
                name: name.to_string(),
                view: parse_view(view_args)
                    .map_err(|e| anyhow::anyhow!("{e}; {}", usage("show")))?,
            }
        }
        "png" => {
            let mut scale = 4;
            let mut positional = Vec::new();
            let mut iter = args.iter();
            while let Some(arg) = iter.next() {
                let value = if let Some(value) = arg.strip_prefix("--scale=") {
                    Some(value)
                } else if *arg == "--scale" {
                    Some(
                        *iter
                            .next()
                            .with_context(|| format!("--scale needs a number; {}", usage("png")))?,
                    )
                } else {
                    None
                };
                match value {
                    Some(value) => {
                        scale = value
                            .parse::<usize>()
                            .ok()
                            .filter(|s| (1..=64).contains(s))
                            .with_context(|| {
                                format!(
                                    "--scale must be a whole number from 1 to 64, not `{value}`"
                                )
                            })?;
                    }
                    None if arg.starts_with("--") => {
                        bail!("unknown option `{arg}`; {}", usage("png"))
                    }
                    None => positional.push(*arg),
                }
            }
            let [name, path, view_args @ ..] = positional.as_slice() else {
                bail!("{}", usage("png"));
            };
            Command::Png {
                name: name.to_string(),
                path: PathBuf::from(path),
                view: parse_view(view_args)
                    .map_err(|e| anyhow::anyhow!("{e}; {}", usage("png")))?,
                scale,
            }
        }
        "help" | "h" | "?" => Command::Help,
        "quit" | "q" | "exit" => Command::Quit,
        _ => {
            let names = COMMANDS.iter().map(|c| c.name);
            match closest(head, names) {
                Some(near) => bail!("unknown command `:{head}`; did you mean `:{near}`? (`:help` lists the commands)"),
                None => bail!("unknown command `:{head}` (`:help` lists the commands)"),
            }
        }
    };
    Ok(command)
}

/// `[x|y|z] [INDEX] [T]`, also accepting `t=T` anywhere.
fn parse_view(args: &[&str]) -> Result<ViewSpec> {
    let mut view = ViewSpec::default();
    let mut numbers = Vec::new();
    for (idx, arg) in args.iter().enumerate() {
        if let Some(value) = arg.strip_prefix("t=") {
            view.volume = parse_index(value, "volume")?;
            continue;
        }
        let axis = match *arg {
            "x" => Some(Axis::X),
            "y" => Some(Axis::Y),
            "z" => Some(Axis::Z),
            _ => None,
        };
        match axis {
            Some(axis) if idx == 0 => view.axis = Some(axis),
            Some(_) => bail!("the axis (x, y or z) comes first"),
            None => numbers.push(parse_index(arg, "index")?),
        }
    }
    match (view.axis, numbers.as_slice()) {
        (_, []) => {}
        (Some(_), [index]) => view.index = Some(*index),
        (Some(_), [index, volume]) => {
            view.index = Some(*index);
            view.volume = *volume;
        }
        // Without an axis the only number is the volume of a 4-D image.
        (None, [volume]) => view.volume = *volume,
        _ => bail!("too many numbers"),
    }
    Ok(view)
}

fn parse_index(text: &str, what: &str) -> Result<usize> {
    text.parse::<usize>()
        .with_context(|| format!("the {what} must be a whole number from 0, not `{text}`"))
}

/// The candidate nearest to `word` by edit distance, when near enough to be a typo.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views() {
        assert_eq!(parse_view(&[]).unwrap(), ViewSpec::default());
        let v = parse_view(&["z", "12", "3"]).unwrap();
        assert_eq!((v.axis, v.index, v.volume), (Some(Axis::Z), Some(12), 3));
        let v = parse_view(&["5"]).unwrap();
        assert_eq!((v.axis, v.index, v.volume), (None, None, 5));
        let v = parse_view(&["x", "t=2"]).unwrap();
        assert_eq!((v.axis, v.index, v.volume), (Some(Axis::X), None, 2));
        assert!(parse_view(&["3", "z"]).is_err());
        assert!(parse_view(&["z", "-1"]).is_err());
    }

    #[test]
    fn typos_get_suggestions() {
        let msg = parse("lod a b").unwrap_err().to_string();
        assert!(msg.contains("did you mean `:load`"), "{msg}");
        let msg = parse("zzzzzz").unwrap_err().to_string();
        assert!(!msg.contains("did you mean"), "{msg}");
    }

    #[test]
    fn save_options() {
        assert_eq!(
            parse("save m out.nii --copy-header-from=anat").unwrap(),
            Command::Save {
                name: "m".into(),
                path: "out.nii".into(),
                copy_header_from: Some("anat".into())
            }
        );
        assert!(parse("save m out.nii --copy-header-from").is_err());
    }
}
