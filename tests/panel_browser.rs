//! The control panel in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`, through fantoccini), as a customer uses it: log in, upload
//! `hello.cgi` (it lands 0644, the badge says refused and why), tick owner-execute and see the
//! badge say it runs before Apply, apply, the script answers over HTTP, edit it in the page and
//! it still runs, and the logs show the earlier 500. The permission form is worked with the
//! keyboard alone. A failing step leaves a screenshot of the page under the tests' output
//! directory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator, key::Key};

use crate::panel::{host, panel_addr};
use crate::support::have;
use crate::support::host::get;

/// A chromedriver of our own on a free port; ended (by its pid) when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let out = child.stdout.take().expect("stdout");
        let mut port = None;
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                port = rest.trim_end_matches('.').trim().parse().ok();
                break;
            }
        }
        Driver {
            port: port.expect("chromedriver said its port"),
            child,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session with a profile of its own in `profile`.
async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::rustls()
        .expect("a WebDriver client")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

/// Waits for `css` to be on the page (WebDriver's own wait, bounded).
async fn find(c: &Client, css: &str) -> Result<fantoccini::elements::Element, String> {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .map_err(|e| format!("{css} never appeared: {e}"))
}

/// The page's text.
async fn page_text(c: &Client) -> String {
    match c.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Polls `check` against the page's text for a while.
async fn until_text(c: &Client, what: &str, check: impl Fn(&str) -> bool) -> Result<(), String> {
    for _ in 0..100 {
        if check(&page_text(c).await) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "the page never showed {what}:\n{}",
        page_text(c).await
    ))
}

#[test]
fn a_customer_makes_a_script_run_in_the_browser() {
    if !crate::support::host::as_root() || !have("chromium") || !have("chromedriver") {
        return;
    }
    let h = host();
    // The script is uploaded through the page, not put there.
    std::fs::remove_file(h.home("alice").join("public_html/cgi-bin/hello.cgi")).expect("rm");
    let running = h.start();
    let panel = panel_addr(&running.server);
    let upload = h.root.join("hello.cgi");
    std::fs::write(
        &upload,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello from a browser\\n'\n",
    )
    .expect("write");
    std::fs::set_permissions(&upload, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let driver = Driver::start();
    let profile = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("panel-screenshots");
    let outcome = rt.block_on(async {
        let c = browser(&driver, profile.path()).await;
        let steps = steps(&c, panel, &upload, &h, &running.server).await;
        if let Err(e) = &steps {
            let _ = std::fs::create_dir_all(&shots);
            if let Ok(png) = c.screenshot().await {
                let _ = std::fs::write(shots.join("failed.png"), png);
            }
            eprintln!("screenshot: {}", shots.join("failed.png").display());
            eprintln!("{e}");
        }
        let _ = c.close().await;
        steps
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

async fn steps(
    c: &Client,
    panel: SocketAddr,
    upload: &std::path::Path,
    h: &crate::support::host::Host,
    server: &crate::support::Server,
) -> Result<(), String> {
    let e = |what: &'static str| move |err: fantoccini::error::CmdError| format!("{what}: {err}");
    let base = format!("http://{panel}");
    c.goto(&format!("{base}/"))
        .await
        .map_err(e("open the panel"))?;
    // Log in.
    find(c, "#name")
        .await?
        .send_keys("alice")
        .await
        .map_err(e("name"))?;
    find(c, "#password")
        .await?
        .send_keys("alice-secret")
        .await
        .map_err(e("password"))?;
    find(c, "form.login button")
        .await?
        .click()
        .await
        .map_err(e("log in"))?;
    find(c, "#upload").await?;
    // Upload hello.cgi into cgi-bin: it lands 0644, refused, with the reason.
    c.goto(&format!("{base}/files?path=%2Fpublic_html%2Fcgi-bin"))
        .await
        .map_err(e("cgi-bin"))?;
    find(c, "#files")
        .await?
        .send_keys(&upload.display().to_string())
        .await
        .map_err(e("choose the file"))?;
    find(c, "#upload button")
        .await?
        .click()
        .await
        .map_err(e("upload"))?;
    until_text(c, "the upload's result", |t| {
        t.contains("hello.cgi: ") && t.contains("0644")
    })
    .await?;
    let listed = page_text(c).await;
    if !listed.contains("refused") {
        return Err(format!("no refusal shown after the upload:\n{listed}"));
    }
    let script = h.home("alice").join("public_html/cgi-bin/hello.cgi");
    let mode = std::fs::metadata(&script)
        .map_err(|e| e.to_string())?
        .permissions()
        .mode()
        & 0o7777;
    if mode != 0o644 {
        return Err(format!("the upload landed {mode:04o}, not 0644"));
    }
    // The browser's other tab, so to speak: the script asked for now is refused.
    let (status, _) = get(server, "alice.example", "/cgi-bin/hello.cgi");
    if status != 500 {
        return Err(format!("the 0644 script answered {status}, not 500"));
    }
    // The file's page: tick owner-execute; the badge says it runs before Apply.
    c.goto(&format!(
        "{base}/file?path=%2Fpublic_html%2Fcgi-bin%2Fhello.cgi"
    ))
    .await
    .map_err(e("the file's page"))?;
    find(c, "#verdict .badge.refused").await?;
    find(c, "#bit-owner-execute")
        .await?
        .click()
        .await
        .map_err(e("tick"))?;
    find(c, "#verdict .badge.runs").await?;
    let octal = find(c, "#octal").await?.text().await.map_err(e("octal"))?;
    if octal != "0744" {
        return Err(format!("the mode shown is {octal}, not 0744"));
    }
    if std::fs::metadata(&script)
        .map_err(|e| e.to_string())?
        .permissions()
        .mode()
        & 0o777
        != 0o644
    {
        return Err("the mode changed before Apply".into());
    }
    // The keyboard alone: others-execute toggled with the space bar, then off again.
    let others = find(c, "#bit-others-execute").await?;
    others.send_keys(" ").await.map_err(e("space"))?;
    until_text(c, "0745", |t| t.contains("0745")).await?;
    others.send_keys(" ").await.map_err(e("space again"))?;
    until_text(c, "0744", |t| t.contains("0744")).await?;
    // Apply, with the keyboard too.
    find(c, "#permissions button")
        .await?
        .send_keys(&Key::Enter.to_string())
        .await
        .map_err(e("apply"))?;
    until_text(c, "the applied mode", |t| t.contains("is now 0744")).await?;
    let (status, body) = get(server, "alice.example", "/cgi-bin/hello.cgi");
    if (status, body.as_str()) != (200, "hello from a browser\n") {
        return Err(format!("the script answered {status}: {body}"));
    }
    // Edit it in the page: it still runs, with the new text.
    c.goto(&format!(
        "{base}/edit?path=%2Fpublic_html%2Fcgi-bin%2Fhello.cgi"
    ))
    .await
    .map_err(e("the editor"))?;
    let area = find(c, "#content").await?;
    area.clear().await.map_err(e("clear"))?;
    area.send_keys("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nedited in a browser\\n'\n")
        .await
        .map_err(e("type"))?;
    find(c, "form.editor button")
        .await?
        .click()
        .await
        .map_err(e("save"))?;
    until_text(c, "the saved file", |t| {
        t.contains("saved /public_html/cgi-bin/hello.cgi")
    })
    .await?;
    let (status, body) = get(server, "alice.example", "/cgi-bin/hello.cgi");
    if (status, body.as_str()) != (200, "edited in a browser\n") {
        return Err(format!(
            "after the edit the script answered {status}: {body}"
        ));
    }
    // The earlier 500 (the request while it was 0644) is in the logs view, linked to the
    // file's permissions; the error log says why.
    c.goto(&format!("{base}/logs?log=access&status=refused"))
        .await
        .map_err(e("the access log"))?;
    until_text(c, "the 500 in the log", |t| {
        t.contains("/cgi-bin/hello.cgi HTTP/1.0\" 500")
    })
    .await?;
    find(c, "#live a[href*='hello']").await?;
    c.goto(&format!("{base}/logs?log=error"))
        .await
        .map_err(e("the error log"))?;
    until_text(c, "the refusal in the error log", |t| {
        t.contains("hello.cgi") && t.contains("0644")
    })
    .await?;
    Ok(())
}
