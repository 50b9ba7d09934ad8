//! The file browser's pages: a directory (of one layer, with what it changed, or of the whole
//! image) and one file. Names and contents from layers are text here like everything else.

use maud::{Markup, html};

use super::files::{FileView, FilesView};
use super::hives::RegistryView;
use super::layers::EntryKind;
use super::pages::{dir_link, file_link, key_link, layout, link, size};
use super::tree::{Change, mode_string};
use super::visitor::Visitor;

fn crumbs(repository: &str, digest: &str, layer: Option<usize>, path: &str) -> Markup {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let steps: Vec<(&str, String)> = (0..parts.len()).map(|i| (parts[i], parts[..=i].join("/"))).collect();
    html! {
        nav.crumbs aria-label="Path" {
            a href=(dir_link(repository, digest, layer, "")) { "/" }
            @for (part, so_far) in &steps {
                " " a href=(dir_link(repository, digest, layer, so_far)) { (part) } " /"
            }
        }
    }
}

/// A directory.
pub(super) fn files(visitor: &Visitor, view: &FilesView) -> Markup {
    let (repo, digest) = (&view.repository, &view.digest);
    let title = match view.layer {
        Some(n) => format!("Layer {} of {}@{}", n + 1, repo, &digest[..digest.len().min(19)]),
        None => format!("Files of {}@{}", repo, &digest[..digest.len().min(19)]),
    };
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href="/ui/" { "Repositories" } " / " a href=(link(repo, None)) { (repo) } " / "
            a href=(link(repo, Some(digest))) { code { (&digest[..digest.len().min(19)]) } }
        }
        h1 { (title) }
        nav.layers aria-label="Layers" {
            @if view.layer.is_none() { strong { "All layers" } } @else { a href=(dir_link(repo, digest, None, &view.path)) { "All layers" } }
            @for (i, l) in view.layers.iter().enumerate() {
                " · "
                @if view.layer == Some(i) { strong { "Layer " (i + 1) } }
                @else if l.stored { a href=(dir_link(repo, digest, Some(i), &view.path)) title=(l.digest) { "Layer " (i + 1) } }
                @else { span title="foreign layer, not stored here" { "Layer " (i + 1) " (foreign)" } }
            }
        }
        (crumbs(repo, digest, view.layer, &view.path))
        @if view.windows {
            p.note { "Windows image: names compare without regard to case. "
                a href=(key_link(repo, digest, view.layer, "HKLM\\SOFTWARE")) { "Its registry" } }
        }
        @if view.layer.is_none() && view.layers.iter().any(|l| !l.stored) {
            p.note { "Foreign layers are not stored here: their files are not shown." }
        }
        @if view.refused > 0 { p.note { (view.refused) " entries with unsafe names are not shown." } }
        @if view.rows.is_empty() { p.empty { "Empty." } }
        table #files {
            thead { tr {
                th scope="col" { "Name" } th scope="col" { "Mode" } th scope="col" { "Owner" } th scope="col" { "Size" }
                @if view.layer.is_some() { th scope="col" { "Change" } } @else { th scope="col" { "Layer" } }
            } }
            tbody {
                @for r in &view.rows {
                    tr class=(match r.change { Some(Change::Deleted) => "deleted", Some(Change::Added) => "added", Some(Change::Changed) => "changed", None => "" }) {
                        td {
                            @match r.kind {
                                EntryKind::Dir => a href=(dir_link(repo, digest, view.layer, &r.path)) { (r.name) "/" },
                                EntryKind::File | EntryKind::Hardlink => a href=(file_link(repo, digest, r.layer, &r.path, false)) { (r.name) },
                                EntryKind::Whiteout => del { (r.name) },
                                _ => span { (r.name) },
                            }
                            @if let Some(target) = &r.link { " → " code { (target) } }
                        }
                        td { code { (mode_string(r.kind, r.mode)) } }
                        td { (r.uid) ":" (r.gid) }
                        td { @if r.kind == EntryKind::File { (size(r.size)) } }
                        @if let Some(change) = r.change {
                            td { (match change { Change::Added => "added", Change::Changed => "changed", Change::Deleted => "deleted" }) }
                        } @else {
                            td { (r.layer + 1) }
                        }
                    }
                }
            }
        }
    };
    layout(&title, visitor, "", &body)
}

/// One file.
pub(super) fn file(visitor: &Visitor, view: &FileView) -> Markup {
    let (repo, digest) = (&view.repository, &view.digest);
    let parent = view.path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href="/ui/" { "Repositories" } " / " a href=(link(repo, None)) { (repo) } " / "
            a href=(link(repo, Some(digest))) { code { (&digest[..digest.len().min(19)]) } }
            " / " a href=(dir_link(repo, digest, Some(view.layer), parent)) { "layer " (view.layer + 1) }
        }
        h1 { (view.path) }
        dl.facts {
            dt { "Mode" } dd { code { (mode_string(view.entry.kind, view.entry.mode)) } }
            dt { "Owner" } dd { (view.entry.uid) ":" (view.entry.gid) }
            dt { "Size" } dd { (size(view.entry.size)) }
            @if let Some(l) = &view.entry.link { dt { "Link to" } dd { code { (l) } } }
        }
        p { a #download href=(file_link(repo, digest, view.layer, &view.path, true)) { "Download" } }
        @match &view.text {
            Some(text) => pre #content { (text) },
            None => p.note { "Not shown: binary, or larger than 1 MiB." },
        }
    };
    layout(&view.path, visitor, "", &body)
}

/// A key of a Windows image's registry.
pub(super) fn registry(visitor: &Visitor, view: &RegistryView) -> Markup {
    let (repo, digest) = (&view.repository, &view.digest);
    let parts: Vec<&str> = view.key.split('\\').collect();
    // The root is two names (HKLM\SOFTWARE); each step below adds one.
    let steps: Vec<(&str, String)> = (1..parts.len()).map(|i| (parts[i], parts[..=i].join("\\"))).collect();
    let title = format!("{} of {}@{}", view.key, repo, &digest[..digest.len().min(19)]);
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href="/ui/" { "Repositories" } " / " a href=(link(repo, None)) { (repo) } " / "
            a href=(link(repo, Some(digest))) { code { (&digest[..digest.len().min(19)]) } }
            " / " a href=(dir_link(repo, digest, view.layer, "")) { "files" }
        }
        h1 { (view.key) }
        nav.layers aria-label="Hives" {
            @for (i, root) in view.hives.iter().enumerate() {
                @if i > 0 { " · " }
                @if view.key.eq_ignore_ascii_case(root) { strong { (root) } } @else { a href=(key_link(repo, digest, view.layer, root)) { (root) } }
            }
        }
        nav.crumbs aria-label="Key" {
            (parts[0])
            @for (i, (name, so_far)) in steps.iter().enumerate() {
                " \\ "
                @if i + 1 == steps.len() { strong { (name) } } @else { a href=(key_link(repo, digest, view.layer, so_far)) { (name) } }
            }
        }
        p.note {
            "Merged from " (view.files) " hive file" @if view.files != 1 { "s" }
            @if let Some(n) = view.layer { ", as of layer " (n + 1) } "."
            @if let Some(class) = &view.class { " Class: " code { (class) } }
        }
        @if view.values.is_empty() { p.empty { "No values." } } @else {
            table #values {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Data" } } }
                tbody {
                    @for v in &view.values {
                        tr {
                            td { @if v.name.is_empty() { em { "(Default)" } } @else { (v.name) } }
                            td { code { (v.kind) } }
                            td { code.data { (v.data) } }
                        }
                    }
                }
            }
        }
        h2 { "Subkeys" }
        @if view.subkeys.is_empty() { p.empty { "None." } } @else {
            ul #subkeys {
                @for name in &view.subkeys {
                    li { a href=(key_link(repo, digest, view.layer, &format!("{}\\{name}", view.key))) { (name) } }
                }
            }
        }
    };
    layout(&title, visitor, "", &body)
}
