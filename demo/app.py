"""segcount's web demo on Hugging Face Spaces (this file is the Space's `app_file`) or from a checkout.

The app itself lives in the package, `segcount.app` (chapter `nbs/60_app.ipynb`), so `segcount demo` also works
from an installed wheel in any folder; this file only serves it."""
from segcount.app import main, parse_args

if __name__ == "__main__":
    a = parse_args()
    main(a.host, a.port, a.weights)
