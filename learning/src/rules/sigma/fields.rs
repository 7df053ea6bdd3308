//! The Sigma log sources the node can evaluate, and each one's fields.
//!
//! One table per category: the Sigma field name, its kind (which modifiers
//! make sense on it) and where its value comes from in the node's events.
//! docs/RULES.md shows the same tables; a unit test holds the two together.

/// What a field holds, which decides the modifiers a rule may use on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text: paths, command lines, names.
    Text,
    /// A whole number (process ids, ports).
    Number,
    /// An IP address (text form; `cidr` applies).
    Ip,
    /// `true` or `false`.
    Bool,
}

/// One field of a log source.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    /// Where the value comes from, for the documentation.
    pub source: &'static str,
}

const fn f(name: &'static str, kind: Kind, source: &'static str) -> Field {
    Field { name, kind, source }
}

/// The Sigma categories the node maps (with `product: linux` or no product).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    ProcessCreation,
    NetworkConnection,
    FileEvent,
}

impl Category {
    pub const ALL: [Category; 3] = [
        Category::ProcessCreation,
        Category::NetworkConnection,
        Category::FileEvent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Category::ProcessCreation => "process_creation",
            Category::NetworkConnection => "network_connection",
            Category::FileEvent => "file_event",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == s)
    }

    /// The fields a rule of this category may name.
    pub fn fields(self) -> &'static [Field] {
        match self {
            Category::ProcessCreation => PROCESS_CREATION,
            Category::NetworkConnection => NETWORK_CONNECTION,
            Category::FileEvent => FILE_EVENT,
        }
    }

    pub fn field(self, name: &str) -> Option<&'static Field> {
        self.fields().iter().find(|f| f.name == name)
    }

    /// Fields Sigma rules for Linux commonly use that the sensors do not
    /// record, with the reason a rule naming one is refused.
    pub fn missing(self, name: &str) -> Option<&'static str> {
        MISSING
            .iter()
            .find(|(c, n, _)| *c == self && *n == name)
            .map(|(_, _, why)| *why)
    }
}

use Kind::{Bool, Ip, Number, Text};

pub const PROCESS_CREATION: &[Field] = &[
    f(
        "Image",
        Text,
        "`process.exe`: the executable's path (eBPF: the path given to execve; procfs: /proc/PID/exe)",
    ),
    f(
        "CommandLine",
        Text,
        "`process.cmdline`, the arguments joined by one space",
    ),
    f("ProcessId", Number, "`process.pid`"),
    f("ParentProcessId", Number, "`process.ppid`"),
    f(
        "ParentImage",
        Text,
        "`lineage[0].exe`: the parent's executable path",
    ),
    f(
        "ParentName",
        Text,
        "`lineage[0].name`: the parent's short name",
    ),
    f(
        "CurrentDirectory",
        Text,
        "`process.cwd`: the working directory (procfs: /proc/PID/cwd; eBPF: read from /proc right after the exec); absent when unknown",
    ),
    f(
        "Name",
        Text,
        "`process.name`: the short name (comm, at most 15 characters)",
    ),
    f(
        "User",
        Text,
        "the user name of `process.uid` (from /etc/passwd when the node started; the uid in decimal when unknown)",
    ),
    f("UserId", Number, "`process.uid`"),
];

pub const NETWORK_CONNECTION: &[Field] = &[
    f(
        "Image",
        Text,
        "the owning process's executable path (socket events; absent for flows)",
    ),
    f(
        "ProcessId",
        Number,
        "the owning process's pid (socket events)",
    ),
    f(
        "User",
        Text,
        "the owning process's user name (socket events; uid in decimal when unknown)",
    ),
    f(
        "Protocol",
        Text,
        "`tcp`, `udp`, `icmp`, `icmpv6` or the IP protocol number",
    ),
    f(
        "Initiated",
        Bool,
        "`true` for an outbound connect, `false` for an accepted connection (absent for flows)",
    ),
    f(
        "SourceIp",
        Ip,
        "the initiator's address (connect: local; accept: remote; flow: `src`)",
    ),
    f("SourcePort", Number, "the initiator's port"),
    f("DestinationIp", Ip, "the address connected to"),
    f("DestinationPort", Number, "the port connected to"),
    f(
        "DestinationIsIpv6",
        Bool,
        "`true` when the destination is an IPv6 address",
    ),
];

pub const FILE_EVENT: &[Field] = &[
    f(
        "TargetFilename",
        Text,
        "`path` of a file opened for writing or creation under a watched path (eBPF open sensor)",
    ),
    f("Image", Text, "the opening process's executable path"),
    f("ProcessId", Number, "the opening process's pid"),
    f(
        "User",
        Text,
        "the opening process's user name (uid in decimal when unknown)",
    ),
];

/// Known Sigma fields the node's sensors do not record.
const MISSING: &[(Category, &str, &str)] = &[
    (
        Category::ProcessCreation,
        "ParentCommandLine",
        "the lineage records the parent's path and name, not its command line",
    ),
    (
        Category::ProcessCreation,
        "LogonId",
        "Linux processes have no logon session id in the node's events",
    ),
    (
        Category::ProcessCreation,
        "OriginalFileName",
        "a PE header field; Linux executables have none",
    ),
    (
        Category::ProcessCreation,
        "Hashes",
        "the process sensors do not hash executables",
    ),
    (
        Category::ProcessCreation,
        "ParentUser",
        "the lineage records no user",
    ),
    (
        Category::NetworkConnection,
        "DestinationHostname",
        "the sensors record addresses, not names",
    ),
    (
        Category::NetworkConnection,
        "SourceHostname",
        "the sensors record addresses, not names",
    ),
    (
        Category::NetworkConnection,
        "CommandLine",
        "socket events carry the owner's path and pid, not its command line",
    ),
    (
        Category::FileEvent,
        "CommandLine",
        "file events carry the owner's path and pid, not its command line",
    ),
];
