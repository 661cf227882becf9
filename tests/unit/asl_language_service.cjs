// Validates Amazon States Language files with AWS's own language service; prints one JSON object per file:
// {"file": ..., "diagnostics": [{"severity", "message", "line"}]}. Exits 0 whatever it finds.
const fs = require("fs");
const { getLanguageService, TextDocument } = require("amazon-states-language-service");

const service = getLanguageService({});

async function diagnose(file) {
  const text = fs.readFileSync(file, "utf8");
  const document = TextDocument.create(file, "json", 0, text);
  const jsonDocument = service.parseJSONDocument(document);
  const diagnostics = await service.doValidation(document, jsonDocument);
  return diagnostics.map((d) => ({ severity: d.severity, message: d.message, line: d.range.start.line + 1 }));
}

(async () => {
  for (const file of process.argv.slice(2)) {
    console.log(JSON.stringify({ file, diagnostics: await diagnose(file) }));
  }
})();
