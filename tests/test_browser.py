"""End to end in a real browser: the web page of ``oldphoto_jax.serve`` driven in headless
Chromium through Selenium (Debian's ``chromium`` and ``chromium-driver``:
``apt-get install chromium chromium-driver``). Skipped when they are not installed.

Set ``OLDPHOTO_SCREENSHOT_DIR`` to also keep the screenshot there (it always goes into the
test's temporary folder).
"""
import os
import pathlib
import shutil
import urllib.request

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
webdriver = pytest.importorskip("selenium.webdriver")

from oldphoto_jax import serve  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="no browser: apt-get install chromium chromium-driver"),
]


def chromium_driver(profile_dir):
    """Headless Debian Chromium with the flags this sandboxed, offline machine needs."""
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1100,1400", f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


@pytest.fixture()
def page(tiny_restorer, tmp_path):
    app = serve.create_app(tiny_restorer, max_side=tiny_restorer.options.max_side,
                           log=lambda line: None)
    with serve.BackgroundServer(app) as url:
        driver = chromium_driver(tmp_path / "profile")
        try:
            driver.get(url + "/")
            yield driver, url
        finally:
            driver.quit()


def _upload(driver, path):
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, "file")
    driver.execute_script("arguments[0].style.display = 'block'", field)
    field.send_keys(str(path))
    driver.execute_script("arguments[0].style.display = ''", field)


def test_upload_restore_compare_and_download(page, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver, url = page
    wait = WebDriverWait(driver, 300)
    wait.until(lambda d: "Model:" in d.find_element(By.ID, "model-info").text)
    # The tiny model has no HR mapping and no face network: those choices are disabled.
    assert not driver.find_element(By.CSS_SELECTOR, "input[value=scratch_hr]").is_enabled()
    assert not driver.find_element(By.ID, "faces").is_enabled()

    # A file that is not an image: a clear message, the page stays usable.
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a photo")
    _upload(driver, text_file)
    driver.find_element(By.ID, "restore").click()
    error = wait.until(ec.visibility_of_element_located((By.ID, "error")))
    assert "notes.txt: not an image file" in error.text

    driver.find_element(By.CSS_SELECTOR, "input[value=scratch]").click()
    _upload(driver, REPO / "samples" / "old_w_scratch" / "b.png")
    driver.find_element(By.ID, "restore").click()
    wait.until(ec.visibility_of_element_located((By.ID, "result")))
    assert not driver.find_element(By.ID, "error").is_displayed()
    for image in ("before", "after", "mask", "restored"):
        wait.until(lambda d: d.execute_script(
            f"return document.getElementById('{image}').naturalWidth") > 0)
    assert "Done in" in driver.find_element(By.ID, "status").text

    # The slider moves the boundary between before and after.
    driver.execute_script("const s = document.getElementById('slider'); s.value = 20; "
                          "s.dispatchEvent(new Event('input'));")
    clip = driver.execute_script("return document.getElementById('before-clip').style.clipPath")
    assert "80%" in clip
    driver.save_screenshot(str(tmp_path / "restored_page.png"))
    if os.environ.get("OLDPHOTO_SCREENSHOT_DIR"):
        driver.save_screenshot(os.path.join(os.environ["OLDPHOTO_SCREENSHOT_DIR"],
                                            "serve_page.png"))
    assert (tmp_path / "restored_page.png").stat().st_size > 10_000

    # The download link serves the final PNG as an attachment named after the photo.
    download = driver.find_element(By.ID, "download")
    assert download.is_displayed() and download.get_attribute("download") == "b_restored.png"
    with urllib.request.urlopen(download.get_attribute("href")) as response:
        assert response.read(8) == b"\x89PNG\r\n\x1a\n"
        assert "attachment" in response.headers["content-disposition"]

    driver.find_element(By.ID, "side-by-side").click()
    assert driver.find_element(By.ID, "pair").is_displayed()
    assert not driver.find_element(By.ID, "compare").is_displayed()
