import BakeoffCore
import Testing

/// All records of `text`: each record's line and field texts.
private func records(_ text: String) throws(CSVError) -> [(line: Int, fields: [String])] {
    var reader = CSVReader(Array(text.utf8))
    var out: [(line: Int, fields: [String])] = []
    while let record = try reader.next() { out.append((record.line, record.fields.map(\.text))) }
    return out
}

private func readError(_ bytes: [UInt8]) -> CSVError? {
    var reader = CSVReader(bytes)
    do throws(CSVError) {
        while try reader.next() != nil {}
        return nil
    } catch {
        return error
    }
}

@Suite("CSV reader")
struct CSVReaderTests {
    @Test("the dialect", arguments: [
        ("a,b\n1,2\n", [[1], [2]], [["a", "b"], ["1", "2"]]),
        ("a,b\r\n1,2\r\n", [[1], [2]], [["a", "b"], ["1", "2"]]),
        ("a,b\n1,2", [[1], [2]], [["a", "b"], ["1", "2"]]),
        ("a\n\"x,y\",\"say \"\"hi\"\"\"\n", [[1], [2]], [["a"], ["x,y", "say \"hi\""]]),
        ("a,b\n\"two\nlines\",\"crlf\r\ninside\"\n3,4\n", [[1], [2], [5]], [["a", "b"], ["two\nlines", "crlf\r\ninside"], ["3", "4"]]),
        ("# exported today\n\na,b\n  \t\r\n# another comment\n1,2\n\n", [[3], [6]], [["a", "b"], ["1", "2"]]),
        ("\u{FEFF}a,b\n1,2\n", [[1], [2]], [["a", "b"], ["1", "2"]]),
        ("a,b\n\"x\"  ,\"y\"\t\n", [[1], [2]], [["a", "b"], ["x", "y"]]),
        ("a,b,c\n x ,,\n", [[1], [2]], [["a", "b", "c"], [" x ", "", ""]]),
        ("a,b\nx,#y\n\"#z\",w\n", [[1], [2], [3]], [["a", "b"], ["x", "#y"], ["#z", "w"]]),
        ("a\n\"\"\n", [[1], [2]], [["a"], [""]]),
    ] as [(String, [[Int]], [[String]])])
    func dialect(text: String, lines: [[Int]], fields: [[String]]) throws {
        let read = try records(text)
        #expect(read.map { [$0.line] } == lines)
        #expect(read.map(\.fields) == fields)
    }

    @Test func fieldsKnowWhetherTheyWereQuotedAndTrim() throws {
        var reader = CSVReader(Array("h1,h2\n  a \t,\" b \"\n".utf8))
        let header = try #require(try reader.next())
        #expect(header.fields.map(\.text) == ["h1", "h2"])
        #expect(reader.header == ["h1", "h2"])
        let row = try #require(try reader.next())
        #expect(row.fields.map(\.quoted) == [false, true])
        #expect(row.fields.map(\.trimmed) == ["a", "b"])
        #expect(row.fields[1].text == " b ")
        #expect(String(decoding: row.raw, as: UTF8.self) == "  a \t,\" b \"")
        #expect(try reader.next() == nil)
    }

    @Test("errors name the record's line, the field and its column", arguments: [
        ("a,b\n\"x,y\n", CSVError.Kind.unclosedQuote, 2, 1, "a"),
        ("a,b\n1,\"2\"x\n", .textAfterClosingQuote("x"), 2, 2, "b"),
        ("a,b\n1,\"2\" x,3\r\n", .textAfterClosingQuote("x,3"), 2, 2, "b"),
        ("a,b\n1,2\"3\n", .quoteInUnquotedField, 2, 2, "b"),
        ("a,b\n\"x\ny\",\"z\"q\n", .textAfterClosingQuote("q"), 2, 2, "b"),
        ("a\"b\n", .quoteInUnquotedField, 1, 1, nil),
        ("a,b\n1,2,\"3\n", .unclosedQuote, 2, 3, nil),
    ] as [(String, CSVError.Kind, Int, Int, String?)])
    func errors(text: String, kind: CSVError.Kind, line: Int, field: Int, column: String?) {
        let error = readError(Array(text.utf8))
        #expect(error == CSVError(kind: kind, line: line, field: field, column: column))
    }

    @Test func invalidUTF8IsAnErrorOfItsField() {
        let bytes = Array("user_id,metric\n# caf\u{E9} is fine in a comment\nu1,ok\nJos".utf8) + [0xE9] + Array(",csat\n".utf8)
        #expect(readError(bytes) == CSVError(kind: .invalidUTF8, line: 4, field: 1, column: "user_id"))
        #expect(readError(Array("a\n\"é\n中\"\n".utf8)) == nil)
    }

    @Test func messagesInWords() {
        #expect(CSVError(kind: .unclosedQuote, line: 4, field: 1, column: "variant").description
            == "line 4: column \"variant\": a quoted field is not closed (add the closing \")")
        #expect(CSVError(kind: .quoteInUnquotedField, line: 1, field: 2, column: nil).message
            == "a quote inside unquoted field 2; quote the whole field and double the quote (\"\")")
    }

    // MARK: Both readers take the same dialect

    @Test func covariatesTakeQuotedLineBreaksNow() throws {
        // Refused before the shared reader: "a quoted field is not closed (a line break inside quotes is not supported)".
        let table = try CovariateTable.parse("user_id,metric,value\n\"team a\nuser 1\",csat,3\nu2,csat,4\n", source: "pre.csv")
        #expect(table.value(user: "team a\nuser 1", metric: "csat")! == (3, 1))
        #expect(table.userCount == 2)
        // Lines after it keep their physical numbers.
        #expect {
            _ = try CovariateTable.parse("user_id,metric,value\n\"a\nb\",csat,3\nu2,csat,x\n", source: "pre.csv")
        } throws: { "\($0)" == "pre.csv:4: value: \"x\" is not a number; write a decimal number such as 3.5 or 1e-3" }
    }

    @Test func covariatesTakeCommentsNow() throws {
        // Refused before: the comment was read as the header.
        let text = "# pre-period 2026-10-01 to 2026-10-31\nuser_id,metric,value,units\n# csat rows\nu1,csat,8.5,2\n\n#u2,csat,1,1\n\"#u3\",csat,4,1\n"
        let table = try CovariateTable.parse(text, source: "pre.csv")
        #expect(table.rowCount == 2)
        #expect(table.value(user: "#u3", metric: "csat")! == (4, 1))
        #expect(table.value(user: "#u2", metric: "csat") == nil)
    }

    @Test func summariesAndCovariatesReadOneFileAlike() throws {
        let text = "\u{FEFF}# comment\r\nuser_id,metric,value\r\n\r\n\"u,1\",csat,3\r\n\"u\n2\",csat,4\r\n"
        var reader = CSVReader(Array(text.utf8))
        var users: [String] = []
        while let record = try reader.next() { users.append(record.fields[0].text) }
        #expect(users == ["user_id", "u,1", "u\n2"])
        let table = try CovariateTable.parse(text, source: "pre.csv")
        #expect(table.value(user: "u,1", metric: "csat")! == (3, 1) && table.value(user: "u\n2", metric: "csat")! == (4, 1))
    }
}
