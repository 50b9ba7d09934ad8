//! The HTML of the UI (maud: every interpolated value is escaped). Pages work without
//! JavaScript; `ui.js` only adds search-as-you-type and copy buttons.

use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::model::{ImageView, RepositoryPage, TagPage};
use super::visitor::Visitor;

/// `n` bytes for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub(super) fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A query string value, percent-encoded.
pub(super) fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The path of a repository, tag or digest page.
pub(super) fn link(repository: &str, reference: Option<&str>) -> String {
    match reference {
        None => format!("/ui/r/{repository}"),
        Some(r) if r.contains(':') => format!("/ui/r/{repository}@{r}"),
        Some(tag) => format!("/ui/r/{repository}:{tag}"),
    }
}

/// The URL of a directory (`layer`: 0-based; none for the image).
pub(super) fn dir_link(repository: &str, digest: &str, layer: Option<usize>, path: &str) -> String {
    let base = link(repository, Some(digest));
    match layer {
        Some(n) => format!("{base}?layer={}&files={}", n + 1, encode(path)),
        None => format!("{base}?files={}", encode(path)),
    }
}

/// The URL of a registry key of a Windows image (`layer`: 0-based; none for all layers).
pub(super) fn key_link(repository: &str, digest: &str, layer: Option<usize>, key: &str) -> String {
    let base = link(repository, Some(digest));
    match layer {
        Some(n) => format!("{base}?layer={}&registry={}", n + 1, encode(key)),
        None => format!("{base}?registry={}", encode(key)),
    }
}

/// The URL of a file of layer `layer` (0-based), shown or (`download`) downloaded.
pub(super) fn file_link(repository: &str, digest: &str, layer: usize, path: &str, download: bool) -> String {
    let what = if download { "download" } else { "file" };
    format!(
        "{}?layer={}&{what}={}",
        link(repository, Some(digest)),
        layer + 1,
        encode(path)
    )
}

fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

/// The frame of every page.
pub(super) fn layout(title: &str, visitor: &Visitor, query: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · strata" }
                link rel="stylesheet" href=(assets::CSS.path());
                script src=(assets::JS.path()) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    a.brand href="/ui/" { "strata" }
                    form.search role="search" action="/ui/" method="get" {
                        label for="q" class="visually-hidden" { "Search repositories" }
                        input #q type="search" name="q" value=(query) placeholder="Search repositories" autocomplete="off";
                        button type="submit" { "Search" }
                    }
                    nav.account {
                        @if let Some(user) = visitor.user() {
                            span.user { (user) }
                            form method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(visitor.csrf);
                                button type="submit" { "Sign out" }
                            }
                        } @else if visitor.access_control {
                            a href="/ui/login" { "Sign in" }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// Commands that pull `reference` (`name:tag` or `name@digest`), with copy buttons.
fn pull_commands(host: &str, reference: &str) -> Markup {
    let image = format!("{host}/{reference}");
    html! {
        section.pull aria-label="Pull commands" {
            @for tool in ["docker pull", "podman pull", "strata pull"] {
                @let command = format!("{tool} {image}");
                div.command {
                    code { (command) }
                    button.copy type="button" data-copy=(command) aria-label={ "Copy: " (command) } { "Copy" }
                }
            }
        }
    }
}

/// The repository list.
pub(super) fn repositories(visitor: &Visitor, query: &str, page: &RepositoryPage) -> Markup {
    let body = html! {
        h1 { "Repositories" }
        @if page.repositories.is_empty() {
            p.empty { @if query.is_empty() { "No repositories you may see." } @else { "No repository matches." } }
        }
        table #repositories {
            thead { tr { th scope="col" { "Repository" } th scope="col" { "Tags" } th scope="col" { "Last push" } th scope="col" { "Size" } } }
            tbody {
                @for r in &page.repositories {
                    tr {
                        td { a href=(link(&r.name, None)) { (r.name) } }
                        td { (r.tags) @if r.more_tags { "+" } }
                        td { time { (r.last_push.as_deref().unwrap_or("—")) } }
                        td { (size(r.size)) }
                    }
                }
            }
        }
        @if let Some(next) = &page.next {
            nav.pages { a rel="next" href={ "/ui/?q=" (encode(query)) "&after=" (encode(next)) } { "More repositories →" } }
        }
    };
    layout("Repositories", visitor, query, &body)
}

/// A repository's tags.
pub(super) fn repository(visitor: &Visitor, host: &str, page: &TagPage) -> Markup {
    let name = &page.repository;
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/ui/" { "Repositories" } " / " span { (name) } }
        h1 { (name) }
        @if page.tags.is_empty() { p.empty { "No tags." } }
        table #tags {
            thead { tr {
                th scope="col" { "Tag" } th scope="col" { "Digest" } th scope="col" { "Platforms" }
                th scope="col" { "Size" } th scope="col" { "Pushed" } th scope="col" { "Pull" }
                @if page.may_delete { th scope="col" { span.visually-hidden { "Delete" } } }
            } }
            tbody {
                @for t in &page.tags {
                    tr {
                        td { a href=(link(name, Some(&t.tag))) { (t.tag) } }
                        td { a.digest href=(link(name, Some(&t.digest))) title=(t.digest) { code { (short(&t.digest)) } } }
                        td { (t.summary.platforms.join(", ")) }
                        td { (size(t.summary.size)) }
                        td { time { (t.pushed) } }
                        td {
                            @let command = format!("docker pull {host}/{name}:{}", t.tag);
                            button.copy type="button" data-copy=(command) aria-label={ "Copy: " (command) } { "Copy pull" }
                        }
                        @if page.may_delete {
                            td { a.danger href={ (link(name, Some(&t.tag))) "?delete" } { "Delete" } }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &page.next {
            nav.pages { a rel="next" href={ (link(name, None)) "?after=" (encode(next)) } { "More tags →" } }
        }
    };
    layout(name, visitor, "", &body)
}

fn host_builds(range: Option<(u32, Option<u32>)>) -> String {
    match range {
        None => String::new(),
        Some((first, Some(last))) if first == last => format!("build {first} only"),
        Some((first, Some(last))) => format!("builds {first}–{last}"),
        Some((first, None)) => format!("build {first} and later"),
    }
}

fn argv(value: &Option<Vec<String>>) -> String {
    value
        .as_ref()
        .map(|v| serde_json::to_string(v).unwrap_or_default())
        .unwrap_or_else(|| "—".into())
}

/// An image: an index's platforms, or a manifest's configuration, history and layers.
pub(super) fn image(visitor: &Visitor, host: &str, view: &ImageView) -> Markup {
    let name = &view.repository;
    let pull_ref = if view.reference.contains(':') {
        format!("{name}@{}", view.reference)
    } else {
        format!("{name}:{}", view.reference)
    };
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href="/ui/" { "Repositories" } " / " a href=(link(name, None)) { (name) } " / " span { (view.reference) }
        }
        h1 { (pull_ref) }
        dl.facts {
            dt { "Digest" } dd { code #digest { (view.digest) } }
            dt { "Media type" } dd { (view.media_type) }
            @if let Some(t) = &view.artifact_type { dt { "Artifact type" } dd { (t) } }
            dt { "Size" } dd { (size(view.size)) }
            @for (k, v) in &view.annotations { dt { (k) } dd { (v) } }
        }
        (pull_commands(host, &pull_ref))
        @if let Some(image) = &view.image {
            p {
                a #browse href=(dir_link(name, &view.digest, None, "")) { "Browse the image's files" }
                @if image.os == "windows" { " · " a #registry href=(key_link(name, &view.digest, None, "HKLM\\SOFTWARE")) { "its registry" } }
            }
        }
        @if !view.platforms.is_empty() {
            h2 { "Platforms" }
            table #platforms {
                thead { tr {
                    th scope="col" { "OS" } th scope="col" { "Architecture" } th scope="col" { "Variant" }
                    th scope="col" { "OS version" } th scope="col" { "Runs on Windows hosts" } th scope="col" { "Manifest" }
                } }
                tbody {
                    @for p in &view.platforms {
                        tr {
                            td { (p.os) } td { (p.architecture) } td { (p.variant.as_deref().unwrap_or("")) }
                            td { (p.os_version.as_deref().unwrap_or("")) }
                            td { (host_builds(p.host_builds)) }
                            td { a.digest href=(link(name, Some(&p.digest))) title=(p.digest) { code { (short(&p.digest)) } } }
                        }
                    }
                }
            }
        }
        @if let Some(image) = &view.image {
            h2 { "Configuration" }
            dl.facts #config {
                dt { "Platform" } dd { (image.os) "/" (image.architecture) @if let Some(v) = &image.variant { "/" (v) } }
                @if let Some(v) = &image.os_version { dt { "OS version" } dd { (v) } }
                @if let Some(c) = &image.created { dt { "Created" } dd { (c) } }
                @if let Some(a) = &image.author { dt { "Author" } dd { (a) } }
                dt { "Entrypoint" } dd { code { (argv(&image.entrypoint)) } }
                dt { "Command" } dd { code { (argv(&image.cmd)) } }
                @if let Some(u) = &image.user { dt { "User" } dd { (u) } }
                @if let Some(w) = &image.working_dir { dt { "Working directory" } dd { (w) } }
                @for e in &image.env { dt { "Environment" } dd { code { (e) } } }
                @for (k, v) in &image.labels { dt { "Label " code { (k) } } dd { (v) } }
            }
            h2 { "History" }
            table #history {
                thead { tr { th scope="col" { "Created" } th scope="col" { "Step" } th scope="col" { "Author" } th scope="col" { "Comment" } } }
                tbody {
                    @for h in &image.history {
                        tr.empty-layer[h.empty_layer] {
                            td { (h.created.as_deref().unwrap_or("")) }
                            td { code { (h.created_by.as_deref().unwrap_or("")) } }
                            td { (h.author.as_deref().unwrap_or("")) }
                            td { (h.comment.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
            h2 { "Layers" }
            table #layers {
                thead { tr { th scope="col" { "#" } th scope="col" { "Digest" } th scope="col" { "Media type" } th scope="col" { "Size" } th scope="col" { "Foreign URLs" } } }
                tbody {
                    @for (i, l) in image.layers.iter().enumerate() {
                        tr {
                            td { @if l.urls.is_empty() { a href=(dir_link(name, &view.digest, Some(i), "")) aria-label={ "Files of layer " (i + 1) } { (i + 1) } } @else { (i + 1) } }
                            td { code title=(l.digest) { (short(&l.digest)) } }
                            td { (l.media_type) }
                            td { (size(l.size)) }
                            td { @for u in &l.urls { code { (u) } " " } }
                        }
                    }
                }
            }
        }
        @if !view.referrers.is_empty() {
            h2 { "Referrers" }
            table #referrers {
                thead { tr { th scope="col" { "Artifact type" } th scope="col" { "Digest" } th scope="col" { "Size" } } }
                tbody {
                    @for r in &view.referrers {
                        tr {
                            td { (r.artifact_type) }
                            td { a.digest href=(link(name, Some(&r.digest))) title=(r.digest) { code { (short(&r.digest)) } } }
                            td { (size(r.size)) }
                        }
                    }
                }
            }
        }
        @if view.may_delete {
            p { a.danger href={ (link(name, Some(&view.reference))) "?delete" } {
                @if view.reference.contains(':') { "Delete this manifest and its tags" } @else { "Delete this tag" }
            } }
        }
    };
    layout(&pull_ref, visitor, "", &body)
}

/// Asks before deleting.
pub(super) fn confirm_delete(visitor: &Visitor, repository: &str, reference: &str) -> Markup {
    let is_digest = reference.contains(':');
    let body = html! {
        h1 { "Delete " @if is_digest { "manifest" } @else { "tag" } "?" }
        p {
            @if is_digest {
                "The manifest " code { (reference) } " of " strong { (repository) } " and every tag that points at it will be deleted."
            } @else {
                "The tag " strong { (repository) ":" (reference) } " will be deleted; the manifest stays."
            }
        }
        form method="post" action="/ui/delete" {
            input type="hidden" name="repository" value=(repository);
            input type="hidden" name="reference" value=(reference);
            input type="hidden" name="csrf" value=(visitor.csrf);
            button.danger type="submit" autofocus { "Delete" }
            " "
            a href=(link(repository, Some(reference))) { "Cancel" }
        }
    };
    layout("Delete", visitor, "", &body)
}

/// The sign-in form.
pub(super) fn login(visitor: &Visitor, error: Option<&str>, next: &str) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.login method="post" action="/ui/login" {
            input type="hidden" name="csrf" value=(visitor.csrf);
            input type="hidden" name="next" value=(next);
            label for="username" { "User" }
            input #username type="text" name="username" autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
    };
    layout("Sign in", visitor, "", &body)
}

/// An error page.
pub(super) fn error(visitor: &Visitor, status: u16, message: &str) -> Markup {
    let body = html! {
        h1 { (status) }
        p.error role="alert" { (message) }
        p { a href="/ui/" { "Repositories" } }
        @if visitor.access_control && visitor.user().is_none() {
            p { a href="/ui/login" { "Sign in" } " to see more." }
        }
    };
    layout("Error", visitor, "", &body)
}
