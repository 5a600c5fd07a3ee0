import BakeoffCore

extension LabelSheet {
    /// The sheet as one self-contained HTML page for labelers: each item's question, reference (when there is
    /// one) and the two answers side by side as Left and Right, three radio buttons (Left, Tie, Right) and a
    /// note. "Download CSV" writes the same CSV as `csv(labels:)` with the choices filled, in the browser (plain
    /// JavaScript, no network: the page's Content-Security-Policy allows no fetch at all). Choices are kept in
    /// the browser's local storage under the sheet's id, so closing the page loses nothing.
    ///
    /// Every text is escaped; the variants' names, the experiment's and the request ids appear nowhere (the key
    /// holds them).
    public func html() -> String {
        let n = items.count
        var page = """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
            <title>Blind comparison: \(n) item\(n == 1 ? "" : "s")</title>
            <style>\(Self.labelCSS)</style>
            </head>
            <body>
            <header>
            <h1>Which answer is better?</h1>
            <p>Each item shows a question (with the expected answer when there is one) and two answers to it, Left and Right. Choose the better answer, or Tie when neither is better. The answers come from different systems and their sides were drawn at random for each item: judge what they say, not where they are.</p>
            <p>Your choices stay in this browser, so you can close the page and come back. When you are done, press Download CSV and send that file back.</p>
            <div class="bar"><span id="progress">0 of \(n) labelled</span> <button id="download" type="button">Download CSV</button></div>
            </header>
            <main>

            """
        for (index, item) in items.enumerated() {
            let code = escapeHTML(item.code)
            page += "<section class=\"item\" id=\"item-\(code)\">\n"
            page += "<h2>Item \(index + 1) of \(n) <span class=\"code\">\(code)</span></h2>\n"
            page += "<div class=\"question\"><h3>Question</h3><div class=\"text\">\(escapeHTML(item.question))</div></div>\n"
            if let reference = item.reference {
                page += "<details class=\"reference\" open><summary>Expected answer</summary><div class=\"text\">\(escapeHTML(reference))</div></details>\n"
            }
            page += "<div class=\"pair\">\n"
            page += "<div class=\"answer\"><h3>Left</h3><div class=\"text\">\(escapeHTML(item.left))</div></div>\n"
            page += "<div class=\"answer\"><h3>Right</h3><div class=\"text\">\(escapeHTML(item.right))</div></div>\n"
            page += "</div>\n"
            page += "<fieldset class=\"choice\"><legend>Better answer</legend>"
            for (value, title) in [("left", "Left"), ("tie", "Tie"), ("right", "Right")] {
                page += "<label><input type=\"radio\" name=\"c-\(code)\" value=\"\(value)\"> \(title)</label>"
            }
            page += "</fieldset>\n"
            page += "<label class=\"note\">Note (optional) <input type=\"text\" id=\"n-\(code)\" maxlength=\"2000\"></label>\n"
            page += "</section>\n"
        }
        page += "</main>\n"
        // The texts again, exactly (HTML parsing changes line ends), for the CSV the page writes.
        var data = "{\"sheet\":\(JSONWriter.quote(id)),\"columns\":[" + Self.csvColumns.map(JSONWriter.quote).joined(separator: ",") + "],\"items\":["
        for (i, item) in items.enumerated() {
            if i > 0 { data += "," }
            data += "{\"item\":\(JSONWriter.quote(item.code)),\"question\":\(JSONWriter.quote(item.question)),"
            data += "\"reference\":\(JSONWriter.quote(item.reference ?? "")),\"left\":\(JSONWriter.quote(item.left)),\"right\":\(JSONWriter.quote(item.right))}"
        }
        data += "]}"
        page += "<script type=\"application/json\" id=\"sheet-data\">\(Self.escapeScriptJSON(data))</script>\n"
        page += "<script>\(Self.labelJS)</script>\n</body>\n</html>\n"
        return page
    }

    /// JSON inside a script element: `<`, `>` and `&` as \u escapes (they only occur inside strings), so no
    /// text can end the element or open a comment.
    static func escapeScriptJSON(_ json: String) -> String {
        var out = ""
        out.reserveCapacity(json.utf8.count)
        for c in json.unicodeScalars {
            switch c {
            case "<": out += "\\u003c"
            case ">": out += "\\u003e"
            case "&": out += "\\u0026"
            case "\u{2028}": out += "\\u2028"
            case "\u{2029}": out += "\\u2029"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static let labelCSS = """
        body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1f;background:#f5f5f7}
        header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:.6em 1.2em;z-index:1}
        header p{margin:.3em 0;max-width:70em}
        h1{font-size:1.3em;margin:.2em 0}
        .bar{display:flex;gap:1em;align-items:center;margin:.4em 0}
        button{font:inherit;padding:.35em 1em;border:1px solid #0a64d8;background:#0a64d8;color:#fff;border-radius:6px;cursor:pointer}
        main{padding:1em 1.2em}
        .item{background:#fff;border:1px solid #ddd;border-radius:8px;padding:.8em 1em;margin:0 0 1.2em}
        .item.done{border-color:#3a9a4a}
        h2{font-size:1.05em;margin:0 0 .5em}
        h3{font-size:.9em;margin:.2em 0;color:#555}
        .code{font:12px ui-monospace,monospace;color:#888;margin-left:.5em}
        .text{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.95em}
        .question .text{background:#f0f4fa;padding:.4em .6em;border-radius:4px}
        .reference{margin:.5em 0}
        .reference summary{cursor:pointer;color:#555;font-size:.9em}
        .reference .text{background:#f3f8f0;padding:.4em .6em;border-radius:4px}
        .pair{display:grid;grid-template-columns:1fr 1fr;gap:1em;margin:.6em 0}
        .answer{border:1px solid #e2e2e2;border-radius:6px;padding:.4em .7em;min-width:0}
        @media (max-width:800px){.pair{grid-template-columns:1fr}}
        .choice{border:0;padding:0;margin:.3em 0;display:flex;gap:1.5em;align-items:center}
        .choice legend{float:left;margin-right:1em;font-weight:600}
        .note{display:block;font-size:.9em;color:#555}
        .note input{width:60%;font:inherit}
        """

    /// The page's script: progress, local storage, and the CSV (the same quoting as `csvField`).
    static let labelJS = #"""
        (function () {
          "use strict";
          var data = JSON.parse(document.getElementById("sheet-data").textContent);
          var storeKey = "bakeoff-labels-" + data.sheet;
          function field(s) {
            s = s == null ? "" : String(s);
            return /[",\r\n]|^[ \t#]|[ \t]$/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
          }
          function choice(code) {
            var c = document.querySelector('input[name="c-' + code + '"]:checked');
            return c ? c.value : "";
          }
          function note(code) { return document.getElementById("n-" + code).value; }
          function csv() {
            var lines = [data.columns.join(",")];
            data.items.forEach(function (it) {
              lines.push([it.item, it.question, it.reference, it.left, it.right, choice(it.item), note(it.item)].map(field).join(","));
            });
            return lines.join("\r\n") + "\r\n";
          }
          function update() {
            var done = 0, saved = {};
            data.items.forEach(function (it) {
              var c = choice(it.item), n = note(it.item);
              document.getElementById("item-" + it.item).classList.toggle("done", c !== "");
              if (c) { done += 1; }
              if (c || n) { saved[it.item] = [c, n]; }
            });
            document.getElementById("progress").textContent = done + " of " + data.items.length + " labelled";
            try { localStorage.setItem(storeKey, JSON.stringify(saved)); } catch (e) { /* storage off: the page still works */ }
          }
          function restore() {
            var saved = null;
            try { saved = JSON.parse(localStorage.getItem(storeKey) || "null"); } catch (e) { saved = null; }
            if (!saved) { return; }
            data.items.forEach(function (it) {
              var s = saved[it.item];
              if (!s) { return; }
              var input = document.querySelector('input[name="c-' + it.item + '"][value="' + s[0] + '"]');
              if (input) { input.checked = true; }
              document.getElementById("n-" + it.item).value = s[1] || "";
            });
          }
          document.addEventListener("change", update);
          document.addEventListener("input", update);
          document.getElementById("download").addEventListener("click", function () {
            var blob = new Blob([csv()], { type: "text/csv;charset=utf-8" });
            var a = document.createElement("a");
            a.href = URL.createObjectURL(blob);
            a.download = "labels-filled.csv";
            document.body.appendChild(a);
            a.click();
            setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
          });
          restore();
          update();
        })();
        """#
}
