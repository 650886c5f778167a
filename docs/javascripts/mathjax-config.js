// MathJax 3 for pymdownx.arithmatex in generic mode: arithmatex wraps every formula of the Markdown pages and
// of the docstrings rendered by mkdocstrings in <span|div class="arithmatex"> with \( \) or \[ \] delimiters;
// MathJax typesets those elements only. The component itself (javascripts/mathjax/tex-svg.js, MathJax 3.2.2
// from the npm package "mathjax", SVG output: no font files) is part of the site: nothing is fetched from
// elsewhere. This file must load before it (mkdocs.yml, extra_javascript).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
  svg: { fontCache: "global" },
};

// With Material's instant navigation a page is swapped in without a reload: typeset it again.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (window.MathJax && MathJax.typesetPromise) {
      MathJax.startup.output.clearCache();
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}
