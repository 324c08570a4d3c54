module github.com/rokup/rokup/deploy

go 1.26.0
