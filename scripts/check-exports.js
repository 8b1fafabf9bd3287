#!/usr/bin/env node
/**
 * `npm run lint` part: no dead exports in src/. Lists
 *
 * - exports of src/ files that no other file (src, support, test, bench,
 *   scripts) uses and that are not part of the package's public API (what
 *   src/index.ts exports, directly or through `export *`);
 * - public members of src/ classes that nothing reads, calls or assigns,
 *   unless the class is public API or the member implements an interface or
 *   overrides a base class (then the other type is what callers use).
 *
 * Uses the TypeScript compiler API (no extra dependency): one program over
 * every .ts file, every identifier resolved to its symbol. A module loaded by
 * a dynamic `import()` counts as used in full. Exits 1 and prints one line per
 * finding if there is any.
 */
import { readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FOLDERS = ['src', 'support', 'test', 'bench', 'scripts'];
const SRC = join(ROOT, 'src') + sep;
const PUBLIC_ENTRY = join(ROOT, 'src', 'index.ts');

function tsFiles(directory) {
  let entries;
  try {
    entries = readdirSync(directory, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((entry) => {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

const config = ts.getParsedCommandLineOfConfigFile(
  join(ROOT, 'tsconfig.json'),
  {},
  {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
    },
  },
);
const options = { ...config.options, noEmit: true, composite: false, rootDir: ROOT };
const program = ts.createProgram(
  FOLDERS.flatMap((folder) => tsFiles(join(ROOT, folder))),
  options,
);
const checker = program.getTypeChecker();
const ours = program
  .getSourceFiles()
  .filter((file) => !file.isDeclarationFile && file.fileName.startsWith(ROOT + sep));

/** The symbol a name finally stands for, through imports and re-exports. */
function original(symbol) {
  return symbol && symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
}

const moduleOf = (file) => checker.getSymbolAtLocation(file);

// Every declaration that is referenced, and from which files. By declaration,
// not by symbol: a member of a generic class has one symbol per instantiation.
const referencedFrom = new Map();
const wholeModulesUsed = new Set();
function noteReference(symbol, fileName) {
  for (const declaration of symbol?.declarations ?? []) {
    let files = referencedFrom.get(declaration);
    if (!files) referencedFrom.set(declaration, (files = new Set()));
    files.add(fileName);
  }
}

for (const file of ours) {
  const visit = (node) => {
    if (ts.isIdentifier(node) || ts.isPrivateIdentifier(node)) {
      const parent = node.parent;
      const symbol = checker.getSymbolAtLocation(node);
      // A name where it is declared is not a use of it (a shorthand `{ x }` is both).
      const isDeclarationName =
        parent?.name === node && (symbol?.declarations ?? []).includes(parent);
      if (!isDeclarationName || ts.isShorthandPropertyAssignment(parent)) {
        noteReference(symbol, file.fileName);
        noteReference(original(symbol), file.fileName);
        if (ts.isShorthandPropertyAssignment(parent)) {
          noteReference(checker.getShorthandAssignmentValueSymbol(parent), file.fileName);
        }
      }
    }
    // `import * as x`, `export * from` and `import()` use a module as a whole.
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [specifier] = node.arguments;
      if (specifier && ts.isStringLiteralLike(specifier)) {
        const target = checker.getSymbolAtLocation(specifier);
        if (target) wholeModulesUsed.add(target);
      }
    }
    if (ts.isNamespaceImport(node)) {
      const declaration = node.parent.parent;
      const target = checker.getSymbolAtLocation(declaration.moduleSpecifier);
      if (target) wholeModulesUsed.add(target);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
}

// The public API: everything src/index.ts exports, followed through `export *`.
const publicApi = new Set();
const indexFile = program.getSourceFile(PUBLIC_ENTRY);
if (indexFile) {
  for (const symbol of checker.getExportsOfModule(moduleOf(indexFile))) {
    publicApi.add(original(symbol));
  }
}

/**
 * Whether `name` is a used member of an interface that the class fits
 * without saying `implements` (e.g. a sink handed over as `this`).
 */
function implementsUsedMember(classType, name) {
  for (const declaration of referencedFrom.keys()) {
    if (!ts.isPropertySignature(declaration) && !ts.isMethodSignature(declaration)) continue;
    if (declaration.name.getText() !== name) continue;
    const owner = checker.getTypeAtLocation(declaration.parent);
    if (checker.isTypeAssignableTo(classType, owner)) return true;
  }
  return false;
}

const findings = [];
const where = (node) => {
  const file = node.getSourceFile();
  const { line } = file.getLineAndCharacterOfPosition(node.getStart());
  return `${relative(ROOT, file.fileName)}:${line + 1}`;
};

for (const file of ours) {
  if (!file.fileName.startsWith(SRC) || file.fileName === PUBLIC_ENTRY) continue;
  const module = moduleOf(file);
  if (!module || wholeModulesUsed.has(module)) continue;
  for (const exported of checker.getExportsOfModule(module)) {
    const symbol = original(exported);
    if (publicApi.has(symbol)) continue;
    const declaration = symbol.declarations?.[0];
    if (!declaration || declaration.getSourceFile() !== file) continue; // a re-export
    const users = new Set(referencedFrom.get(declaration) ?? []);
    const usedHere = users.delete(file.fileName);
    // A type used in its own file names a part of an exported signature.
    const isType = !(symbol.flags & ts.SymbolFlags.Value);
    if (users.size === 0 && !(isType && usedHere)) {
      findings.push(
        `${where(declaration)}  export ${symbol.name} is used by ${usedHere ? 'its own file only' : 'nothing'}`,
      );
    }
  }
  // Public members of this file's classes that nothing uses.
  for (const statement of file.statements) {
    if (!ts.isClassDeclaration(statement) || !statement.name) continue;
    const classSymbol = checker.getSymbolAtLocation(statement.name);
    if (publicApi.has(classSymbol)) continue;
    const classType = checker.getDeclaredTypeOfSymbol(classSymbol);
    const otherTypes = (statement.heritageClauses ?? []).flatMap((clause) =>
      clause.types.map((type) => checker.getTypeAtLocation(type)),
    );
    for (const member of statement.members) {
      if (!member.name || ts.isConstructorDeclaration(member)) continue;
      if (ts.isPrivateIdentifier(member.name)) continue;
      const flags = ts.getCombinedModifierFlags(member);
      if (flags & (ts.ModifierFlags.Private | ts.ModifierFlags.Override)) continue;
      const symbol = checker.getSymbolAtLocation(member.name);
      if (!symbol) continue;
      const name = symbol.name;
      if (otherTypes.some((type) => type.getProperty(name))) continue;
      if (referencedFrom.has(member)) continue;
      if (implementsUsedMember(classType, name)) continue;
      findings.push(`${where(member)}  ${statement.name.text}.${name} is never used`);
    }
  }
}

if (findings.length > 0) {
  console.error(`check-exports: ${findings.length} unused export(s) or member(s) in src/:`);
  for (const finding of findings.sort()) console.error(`  ${finding}`);
  process.exitCode = 1;
} else {
  console.log('check-exports: every export of src/ is used or public');
}
