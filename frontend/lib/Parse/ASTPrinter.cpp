//===- ASTPrinter.cpp - `moec --emit=ast` -----------------------*- C++ -*-===//
#include "moe/Frontend/AST.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/SourceMgr.h"

using namespace moe::frontend;

llvm::StringRef moe::frontend::spellOperator(TokenKind op) {
  llvm::StringRef quoted = describe(op);
  if (quoted.size() >= 2 && quoted.front() == '\'' && quoted.back() == '\'')
    return quoted.drop_front().drop_back();
  return quoted;
}

namespace {
class ASTPrinter {
public:
  ASTPrinter(const llvm::SourceMgr &sourceMgr, llvm::raw_ostream &os) : sourceMgr(sourceMgr), os(os) {}

  void print(const Program &program) {
    for (const ConstDecl &c : program.consts) {
      line(c.loc) << "(const " << c.name;
      printDoc(c.doc);
      os << "\n";
      nested([&] { printExpr(*c.value); });
      os << ")\n";
    }
    for (const auto &fn : program.functions)
      printFunction(*fn, "function");
    for (const LayerDecl &layer : program.layers)
      printLayer(layer);
  }

private:
  llvm::raw_ostream &line(llvm::SMLoc loc) {
    os.indent(indent * 2);
    if (loc.isValid()) {
      auto [lineNo, col] = sourceMgr.getLineAndColumn(loc);
      os << lineNo << ":" << col << " ";
    }
    return os;
  }

  template <typename Fn> void nested(Fn fn) {
    ++indent;
    fn();
    --indent;
  }

  void printDoc(const std::string &doc) {
    if (!doc.empty()) {
      os << " doc=\"";
      os.write_escaped(doc);
      os << "\"";
    }
  }

  void printParams(llvm::StringRef label, const std::vector<Parameter> &params) {
    for (const Parameter &p : params) {
      line(p.loc) << "(" << label << " " << p.name << "\n";
      nested([&] {
        if (p.type) {
          line({}) << "(type\n";
          nested([&] { printExpr(*p.type); });
          line({}) << ")\n";
        }
        if (p.defaultValue) {
          line({}) << "(default\n";
          nested([&] { printExpr(*p.defaultValue); });
          line({}) << ")\n";
        }
      });
      line({}) << ")\n";
    }
  }

  void printFunction(const FunctionDecl &fn, llvm::StringRef label) {
    line(fn.loc) << "(" << label;
    if (!fn.name.empty())
      os << " " << fn.name;
    if (fn.shortForm)
      os << " short";
    printDoc(fn.doc);
    os << "\n";
    nested([&] {
      printParams("param", fn.params);
      printParams("keyword-param", fn.keywordParams);
      for (const Stmt &s : fn.body)
        printStmt(s);
    });
    line({}) << ")\n";
  }

  void printLayer(const LayerDecl &layer) {
    line(layer.loc) << "(layer " << layer.name;
    printDoc(layer.doc);
    os << "\n";
    nested([&] {
      printParams("type-param", layer.typeParams);
      printParams("hyperparam", layer.hyperParams);
      for (const FieldDecl &f : layer.fields) {
        line(f.loc) << "(field " << f.name << "\n";
        nested([&] { printExpr(*f.constructor); });
        line({}) << ")\n";
      }
      if (layer.forward)
        printFunction(*layer.forward, "forward");
    });
    line({}) << ")\n";
  }

  void printTarget(const Target &t) {
    if (!t.isTuple()) {
      os << t.name;
      return;
    }
    os << "(";
    for (size_t i = 0; i < t.elements.size(); ++i) {
      if (i)
        os << ", ";
      printTarget(t.elements[i]);
    }
    os << ")";
  }

  void printStmt(const Stmt &s) {
    switch (s.kind) {
    case Stmt::Kind::Assign:
      line(s.loc) << "(assign ";
      printTarget(s.target);
      os << "\n";
      break;
    case Stmt::Kind::Return:
      line(s.loc) << "(return\n";
      break;
    case Stmt::Kind::Expression:
      line(s.loc) << "(expr\n";
      break;
    }
    if (s.value)
      nested([&] { printExpr(*s.value); });
    line({}) << ")\n";
  }

  void printExpr(const Expr &e) {
    using K = Expr::Kind;
    switch (e.getKind()) {
    case K::Integer:
      line(e.getLoc()) << "(int " << llvm::cast<IntegerExpr>(e).value << ")\n";
      return;
    case K::Float: {
      const auto &f = llvm::cast<FloatExpr>(e);
      line(e.getLoc()) << "(float " << llvm::format("%.16g", f.value) << (f.isFloat32 ? " f32" : "") << ")\n";
      return;
    }
    case K::Bool:
      line(e.getLoc()) << "(bool " << (llvm::cast<BoolExpr>(e).value ? "true" : "false") << ")\n";
      return;
    case K::Nothing:
      line(e.getLoc()) << "(nothing)\n";
      return;
    case K::String:
      line(e.getLoc()) << "(string \"";
      os.write_escaped(llvm::cast<StringExpr>(e).value);
      os << "\")\n";
      return;
    case K::Symbol:
      line(e.getLoc()) << "(symbol :" << llvm::cast<SymbolExpr>(e).name << ")\n";
      return;
    case K::Name:
      line(e.getLoc()) << "(name " << llvm::cast<NameExpr>(e).name << ")\n";
      return;
    case K::Tuple:
      line(e.getLoc()) << "(tuple\n";
      nested([&] {
        for (const ExprPtr &el : llvm::cast<TupleExpr>(e).elements)
          printExpr(*el);
      });
      break;
    case K::Call: {
      const auto &call = llvm::cast<CallExpr>(e);
      line(e.getLoc()) << (call.broadcast ? "(broadcast-call\n" : "(call\n");
      nested([&] {
        printExpr(*call.callee);
        for (const ExprPtr &arg : call.args)
          printExpr(*arg);
        for (const KeywordArg &kw : call.keywords) {
          line(kw.loc) << "(keyword " << kw.name << "\n";
          nested([&] { printExpr(*kw.value); });
          line({}) << ")\n";
        }
      });
      break;
    }
    case K::Curly: {
      const auto &curly = llvm::cast<CurlyExpr>(e);
      line(e.getLoc()) << "(curly\n";
      nested([&] {
        printExpr(*curly.base);
        for (const ExprPtr &p : curly.params)
          printExpr(*p);
      });
      break;
    }
    case K::Index: {
      const auto &index = llvm::cast<IndexExpr>(e);
      line(e.getLoc()) << "(index\n";
      nested([&] {
        printExpr(*index.base);
        for (const ExprPtr &i : index.indices)
          printExpr(*i);
      });
      break;
    }
    case K::Binary: {
      const auto &bin = llvm::cast<BinaryExpr>(e);
      line(e.getLoc()) << "(binary " << spellOperator(bin.op) << "\n";
      nested([&] {
        printExpr(*bin.lhs);
        printExpr(*bin.rhs);
      });
      break;
    }
    case K::Unary: {
      const auto &un = llvm::cast<UnaryExpr>(e);
      line(e.getLoc()) << "(unary " << spellOperator(un.op) << "\n";
      nested([&] { printExpr(*un.operand); });
      break;
    }
    }
    line({}) << ")\n";
  }

  const llvm::SourceMgr &sourceMgr;
  llvm::raw_ostream &os;
  unsigned indent = 0;
};
} // namespace

void moe::frontend::printProgram(const Program &program, const llvm::SourceMgr &sourceMgr, llvm::raw_ostream &os) {
  ASTPrinter(sourceMgr, os).print(program);
}
