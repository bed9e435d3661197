"""Start a download as soon as a handler has written the file: one click, not a click and then a link.

Chain it after the event that fills a gr.File: `event.then(None, file, None, js=DOWNLOAD_JS)`.
The file component keeps its link for a second copy.
"""

# Gradio hands the browser the file's FileData ({url, orig_name, ...}); an <a download> click saves it.
DOWNLOAD_JS = """(file) => {
  if (file && file.url) {
    const link = document.createElement("a");
    link.href = file.url;
    link.download = file.orig_name || "";
    document.body.appendChild(link);
    link.click();
    link.remove();
  }
  return [];
}"""


def download_when_ready(event, file_component) -> None:
    """After `event` fills `file_component`, the browser downloads the file."""
    event.then(None, file_component, None, js=DOWNLOAD_JS, api_visibility="private")
